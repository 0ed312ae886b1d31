package publish_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/publish"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// fixture is a pipeline on an embedded server with a stream "bus" on
// subjects a.> and b.>, and a stand-in for the checkpoint that takes
// resolved items in order and releases them.
type fixture struct {
	t    *testing.T
	ns   *testenv.NATS // nil on servers the test started itself
	url  string
	nc   *nats.Conn
	js   jetstream.JetStream
	pipe *publish.Pipeline

	mu       sync.Mutex
	resolved []flow.Item
	retries  []string // OnRetry's causes, newest last
	wg       sync.WaitGroup
	cancel   context.CancelFunc
}

func newFixture(t *testing.T, cfg publish.Config, stream jetstream.StreamConfig) *fixture {
	t.Helper()
	ns := env.NATS(t)
	f := newFixtureOn(t, ns.URL(), nil, cfg, stream)
	f.ns = ns
	return f
}

// newFixtureOn is a fixture on the server(s) at url, connecting with opts.
func newFixtureOn(t *testing.T, url string, opts []nats.Option, cfg publish.Config, stream jetstream.StreamConfig) *fixture {
	t.Helper()
	f := &fixture{t: t, url: url}
	f.nc, f.js = connect(t, url, append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond), nats.ReconnectBufSize(-1)}, opts...)...)
	if stream.Name == "" {
		stream = jetstream.StreamConfig{Name: "bus", Subjects: []string{"a.>", "b.>"}, Storage: jetstream.FileStorage}
	}
	stream.AllowBatchPublish = true
	ctx := context.Background()
	if _, err := f.js.CreateStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	if cfg.Stream == "" {
		cfg.Stream = stream.Name
	}
	if cfg.OnRetry == nil {
		cfg.OnRetry = f.noteRetry
	}
	var err error
	if f.pipe, err = publish.New(f.nc, cfg); err != nil {
		t.Fatal(err)
	}
	f.start()
	return f
}

func (f *fixture) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	if err := f.pipe.Start(ctx); err != nil {
		f.t.Fatal(err)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		buf := make([]flow.Item, 0, 512)
		for {
			items, err := f.pipe.Resolved(ctx, buf[:0])
			if err != nil {
				return
			}
			f.mu.Lock()
			f.resolved = append(f.resolved, items...)
			f.mu.Unlock()
			f.pipe.Release(len(items))
		}
	}()
	f.t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	f.cancel()
	f.wg.Wait()
	f.pipe.Close()
}

func (f *fixture) noteRetry(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retries = append(f.retries, time.Now().Format("15:04:05.000")+" "+err.Error())
}

// lastRetries are the newest n causes OnRetry heard of.
func (f *fixture) lastRetries(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.retries[max(0, len(f.retries)-n):]...)
}

func (f *fixture) resolvedItems() []flow.Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]flow.Item(nil), f.resolved...)
}

// connect connects to url, closing the connection when the test ends.
func connect(tb testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// events are n events numbered from 1, on subject(i).
func events(tb testing.TB, n int, subject func(i int) string) []*flow.Event {
	evs := make([]*flow.Event, n)
	for i := range evs {
		evs[i] = event(tb, int64(i+1), subject(i))
	}
	return evs
}

func event(t testing.TB, id int64, subject string) *flow.Event {
	u, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return &flow.Event{ID: id, EventID: u, Subject: subject, Payload: []byte(fmt.Sprintf("payload-%d", id)),
		Headers: map[string][]string{"Trace": {fmt.Sprint(id)}}}
}

func submitAll(t testing.TB, p *publish.Pipeline, evs []*flow.Event) {
	t.Helper()
	if err := submit(p, evs); err != nil {
		t.Fatal(err)
	}
}

// submit is submitAll for goroutines other than the test's.
func submit(p *publish.Pipeline, evs []*flow.Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ev := range evs {
		if err := p.Submit(ctx, flow.Item{Event: ev}, time.Time{}); err != nil {
			return fmt.Errorf("submit %d: %w", ev.ID, err)
		}
	}
	p.Flush() // events without a closing mark
	return nil
}

func waitResolved(t *testing.T, f *fixture, n int) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, func() error {
		if got := len(f.resolvedItems()); got < n {
			return fmt.Errorf("%d of %d resolved", got, n)
		}
		return nil
	})
}

// checkStream asserts the stream holds exactly want, in order, once each.
func checkStream(t *testing.T, url string, want []*flow.Event) {
	t.Helper()
	checkMessages(t, testenv.StreamMessages(t, url, "bus"), want)
}

// checkMessages asserts msgs are exactly want, in order, once each.
func checkMessages(t *testing.T, msgs []testenv.Msg, want []*flow.Event) {
	t.Helper()
	if len(msgs) != len(want) {
		t.Fatalf("stream has %d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		ev := want[i]
		if m.ID != ev.EventIDString() {
			t.Fatalf("message %d: id %s, want %s (event %d): order or duplicate broken", i, m.ID, ev.EventIDString(), ev.ID)
		}
		if m.Subject != ev.Subject || string(m.Data) != string(ev.Payload) {
			t.Fatalf("message %d: %s %q, want %s %q", i, m.Subject, m.Data, ev.Subject, ev.Payload)
		}
		if got := m.Header.Get("Trace"); got != fmt.Sprint(ev.ID) {
			t.Fatalf("message %d: row header Trace=%q, want %d", i, got, ev.ID)
		}
		for name := range m.Header {
			switch name {
			case "Trace", jetstream.MsgIDHeader:
			case publish.HeaderOutboxID:
				if got := m.Header.Get(name); got != fmt.Sprint(ev.ID) {
					t.Fatalf("message %d: outbox id header %q, want %d", i, got, ev.ID)
				}
			case publish.HeaderCommitLSN:
			default:
				t.Fatalf("message %d: header %s=%q stored; only the row's headers and Nats-Msg-Id belong there", i, name, m.Header.Get(name))
			}
		}
	}
}

// By default a stored message carries its row's headers and Nats-Msg-Id,
// nothing else; DiagnosticHeaders adds the outbox id and commit LSN.
func TestDiagnosticHeadersAreOptIn(t *testing.T) {
	for _, diag := range []bool{false, true} {
		t.Run(fmt.Sprint("diagnostic=", diag), func(t *testing.T) {
			f := newFixture(t, publish.Config{DiagnosticHeaders: diag}, jetstream.StreamConfig{})
			ev := event(t, 7, "a.x")
			ev.CommitLSN = 0x16B3748
			submitAll(t, f.pipe, []*flow.Event{ev})
			waitResolved(t, f, 1)
			checkStream(t, f.url, []*flow.Event{ev})
			h := testenv.StreamMessages(t, f.url, "bus")[0].Header
			if got := len(h); diag && got != 4 || !diag && got != 2 {
				t.Fatalf("headers %v", h)
			}
			if diag && (h.Get(publish.HeaderOutboxID) != "7" || h.Get(publish.HeaderCommitLSN) != "0/16B3748") {
				t.Fatalf("diagnostic headers %v", h)
			}
		})
	}
}

func TestPublishesInOrderWithHeaders(t *testing.T) {
	f := newFixture(t, publish.Config{MaxInFlight: 256}, jetstream.StreamConfig{})
	var evs []*flow.Event
	for i := 1; i <= 5000; i++ {
		subj := "a.x"
		if i%3 == 0 {
			subj = "b.y.z"
		}
		evs = append(evs, event(t, int64(i), subj))
	}
	submitAll(t, f.pipe, evs)
	waitResolved(t, f, len(evs))
	for i, it := range f.resolvedItems() {
		if it.Event != evs[i] || it.DeadLetter != nil {
			t.Fatalf("resolved %d: event %v dead %v, want event %d", i, it.Event.ID, it.DeadLetter, evs[i].ID)
		}
	}
	checkStream(t, f.url, evs)
	if s := statsOf(f.pipe); s.Published != uint64(len(evs)) || s.InFlight != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// NATS restarts in the middle of a batch (the pipeline is busy: one is
// always open) and loses acks and messages in flight, and the batch's state;
// the next batch, from the first event not known stored, must neither
// duplicate nor reorder.
func TestOrderAndNoDuplicatesAcrossNATSRestart(t *testing.T) {
	f := newFixture(t, publish.Config{MaxInFlight: 1024, AckTimeout: 2 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}, jetstream.StreamConfig{})
	const n = 30000
	evs := events(t, n, func(i int) string { return fmt.Sprintf("a.s%d", i%7) })
	done := make(chan error, 1)
	go func() { done <- submit(f.pipe, evs) }()
	testenv.Eventually(t, time.Minute, func() error {
		if len(f.resolvedItems()) < n/5 {
			return errors.New("waiting for progress before the restart")
		}
		return nil
	})
	f.ns.Restart(t)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitResolved(t, f, n)
	checkStream(t, f.url, evs)
	if s := statsOf(f.pipe); s.Recoveries == 0 {
		t.Fatalf("the restart broke no batch: %+v", s)
	}
}

// A new pipeline resending events a previous one already stored (a relay
// restart before the confirm) stores each once and keeps the order.
func TestResendAfterRestartIsDeduplicated(t *testing.T) {
	f := newFixture(t, publish.Config{}, jetstream.StreamConfig{})
	evs := events(t, 3000, func(int) string { return "a.x" })
	submitAll(t, f.pipe, evs[:2000])
	waitResolved(t, f, 2000)
	f.stop()

	p2, err := publish.New(f.nc, publish.Config{Stream: "bus"})
	if err != nil {
		t.Fatal(err)
	}
	f.pipe, f.resolved = p2, nil
	f.start()
	submitAll(t, f.pipe, evs[1500:])
	waitResolved(t, f, 1500)
	checkStream(t, f.url, evs)
	// In a batch JetStream skips duplicates without saying which: the
	// stream's content above is the proof.
	if s := statsOf(f.pipe); s.Duplicates+s.Published != 1500 {
		t.Fatalf("stats %+v: want 1500 events acked", s)
	}
}

func TestDeadLettersAndGoesOn(t *testing.T) {
	f := newFixture(t, publish.Config{MinBackoff: 10 * time.Millisecond}, jetstream.StreamConfig{
		Name: "bus", Subjects: []string{"a.>"}, Storage: jetstream.FileStorage, MaxMsgSize: 1024,
	})
	good1, unbound, tooBig, good2 := event(t, 1, "a.x"), event(t, 2, "zzz.nostream"), event(t, 3, "a.big"), event(t, 4, "a.y")
	tooBig.Payload = make([]byte, 4096)
	bad := event(t, 5, "a.bad")
	bad.Problem = errors.New("headers: not an object")
	good3 := event(t, 6, "a.z")
	all := []*flow.Event{good1, unbound, tooBig, good2, bad, good3}
	submitAll(t, f.pipe, all)
	waitResolved(t, f, len(all))
	items := f.resolvedItems()
	for i, it := range items {
		if it.Event != all[i] {
			t.Fatalf("resolved out of order at %d", i)
		}
	}
	for i, wantDead := range []string{"", "no stream captures subject", "exceeds maximum", "", "not an object", ""} {
		got := items[i].DeadLetter
		if (wantDead == "") != (got == nil) || (got != nil && !strings.Contains(got.Error(), wantDead)) {
			t.Fatalf("item %d (%s): dead letter %v, want %q", i, all[i].Subject, got, wantDead)
		}
	}
	checkStream(t, f.url, []*flow.Event{good1, good2, good3})
}

// With nothing released (the checkpoint stopped), Submit stops admitting at
// the count or byte bound, whichever comes first: back-pressure, not a queue.
func TestWindowBoundsCountAndBytes(t *testing.T) {
	f := newFixture(t, publish.Config{}, jetstream.StreamConfig{})
	f.stop()
	one := event(t, 0, "a.x")
	one.Payload = make([]byte, 30)
	size := int64(one.Size())
	for _, tc := range []struct {
		name     string
		count    int
		bytes    int64
		admitted int
	}{
		{"count", 10, 1 << 20, 10},
		{"bytes", 1000, 3 * size, 3},
		{"one oversized event always fits an empty window", 1000, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := publish.New(f.nc, publish.Config{Stream: "bus", MaxInFlight: tc.count, MaxInFlightBytes: tc.bytes})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			admitted := 0
			for i := 0; i < tc.admitted+5; i++ {
				ev := event(t, int64(i+1), "a.x")
				ev.Payload = make([]byte, 30)
				err := p.Submit(ctx, flow.Item{Event: ev}, time.Now().Add(20*time.Millisecond))
				if errors.Is(err, flow.ErrFull) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				admitted++
			}
			if admitted != tc.admitted {
				t.Fatalf("admitted %d events, want %d", admitted, tc.admitted)
			}
			if s := statsOf(p); s.InFlight != admitted {
				t.Fatalf("in flight %d, want %d", s.InFlight, admitted)
			}
		})
	}
}

// A subject added to the stream while the relay runs is picked up without a
// restart: events on it stop being dead-lettered.
func TestSubjectAddedToStreamIsPickedUp(t *testing.T) {
	f := newFixture(t, publish.Config{}, jetstream.StreamConfig{})
	submitAll(t, f.pipe, []*flow.Event{event(t, 1, "c.x")})
	waitResolved(t, f, 1)
	if f.resolvedItems()[0].DeadLetter == nil {
		t.Fatal("c.x published before the stream captured it")
	}
	ctx := context.Background()
	if _, err := publish.EnsureStream(ctx, f.js, publish.StreamConfig{Name: "bus", Subjects: []string{"a.>", "b.>", "c.>"}}); err != nil {
		t.Fatal(err)
	}
	var published *flow.Event
	id := int64(2)
	testenv.Eventually(t, 30*time.Second, func() error {
		ev := event(t, id, "c.x")
		id++
		submitAll(t, f.pipe, []*flow.Event{ev})
		waitResolved(t, f, int(id-1))
		if items := f.resolvedItems(); items[len(items)-1].DeadLetter != nil {
			return errors.New("still dead-lettered")
		}
		published = ev
		return nil
	})
	checkStream(t, f.url, []*flow.Event{published})
}

func TestCheckServerAcceptsTheEmbeddedServer(t *testing.T) {
	nc, _ := connect(t, env.NATS(t).URL())
	if err := publish.CheckServer(nc); err != nil {
		t.Fatalf("nats-server %s: %v", nc.ConnectedServerVersion(), err)
	}
}

// stats is what the tests read of a pipeline: its state and its counts.
type stats struct {
	publish.Stats
	Published, Duplicates, DeadLetters, Recoveries, NotAtomic uint64
}

func statsOf(p *publish.Pipeline) stats {
	c := p.Counters()
	return stats{Stats: p.Stats(), Published: c.Published.Load(), Duplicates: c.Duplicates.Load(),
		DeadLetters: c.DeadLetters.Load(), Recoveries: c.Recoveries.Load(), NotAtomic: c.NotAtomic.Load()}
}
