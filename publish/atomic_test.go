package publish_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/publish"
)

// txs are transactions of events; items lays them out as the slot reader
// submits them: each transaction's events, then its commit mark.
type txs [][]*flow.Event

func makeTxs(t testing.TB, sizes []int) txs {
	var out txs
	id := int64(0)
	for _, n := range sizes {
		tx := make([]*flow.Event, n)
		for i := range tx {
			id++
			tx[i] = event(t, id, fmt.Sprintf("a.tx.%d", id%7))
		}
		out = append(out, tx)
	}
	return out
}

func (x txs) items() []flow.Item {
	var out []flow.Item
	for i, tx := range x {
		for _, ev := range tx {
			out = append(out, flow.Item{Event: ev})
		}
		out = append(out, flow.Item{Mark: pglogrepl.LSN(i + 1)})
	}
	return out
}

func (x txs) events() []*flow.Event {
	var out []*flow.Event
	for _, tx := range x {
		out = append(out, tx...)
	}
	return out
}

// checkAtomic asserts that every transaction is in msgs entirely or not at
// all, and that the events present are in order, once each.
func checkAtomic(t *testing.T, msgs []testenv.Msg, x txs) (storedTxs int) {
	t.Helper()
	n, err := wholeTxs(msgs, x)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkAtomicAfterKill is checkAtomic on the stream read right after a
// relay was killed: a transaction cut short at the stream's end is read
// again, since the server may still be storing a batch the relay sent
// (nats-server isolates a commit from direct gets only); that gap closes
// by itself. One that stays, or one in the middle, fails.
func checkAtomicAfterKill(t *testing.T, url string, x txs) (storedTxs int) {
	t.Helper()
	var tail *partialTx
	testenv.Eventually(t, 5*time.Second, func() error {
		var err error
		storedTxs, err = wholeTxs(testenv.StreamMessages(t, url, "bus"), x)
		if err != nil && (!errors.As(err, &tail) || !tail.last) {
			t.Fatal(err)
		}
		return err
	})
	return storedTxs
}

type partialTx struct {
	tx, stored, size int
	last             bool // the stream's last transaction
}

func (e *partialTx) Error() string {
	return fmt.Sprintf("transaction %d: %d of its %d events in the stream", e.tx, e.stored, e.size)
}

func wholeTxs(msgs []testenv.Msg, x txs) (storedTxs int, err error) {
	where := map[string][2]int{} // event id → transaction, global index
	k := 0
	for i, tx := range x {
		for _, ev := range tx {
			where[ev.EventIDString()] = [2]int{i, k}
			k++
		}
	}
	count := make([]int, len(x))
	last, lastTx := -1, -1
	for _, m := range msgs {
		w, ok := where[m.ID]
		if !ok {
			return 0, fmt.Errorf("unknown message %s on %s", m.ID, m.Subject)
		}
		if w[1] <= last {
			return 0, fmt.Errorf("event %d stored after event %d: order or duplicate broken", w[1], last)
		}
		last, lastTx = w[1], w[0]
		count[w[0]]++
	}
	for i, n := range count {
		switch n {
		case 0:
		case len(x[i]):
			storedTxs++
		default:
			return 0, &partialTx{tx: i, stored: n, size: len(x[i]), last: i == lastTx}
		}
	}
	return storedTxs, nil
}

// atomicStream creates stream "bus" allowing batched and atomic publishing.
func atomicStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	if _, err := publish.EnsureStream(context.Background(), js, publish.StreamConfig{
		Name: "bus", Subjects: []string{"a.>", "b.>"}, AllowAtomic: true,
	}); err != nil {
		t.Fatal(err)
	}
}

// run is one pipeline's life ("a relay process"): it submits items and
// records the resolved ones until killed.
type run struct {
	pipe     *publish.Pipeline
	cancel   context.CancelFunc
	done     chan struct{}
	resolved chan []flow.Item
}

func startRun(t *testing.T, nc *nats.Conn, cfg publish.Config, items []flow.Item) *run {
	t.Helper()
	p, err := publish.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &run{pipe: p, cancel: cancel, done: make(chan struct{}), resolved: make(chan []flow.Item, 1)}
	go func() {
		for _, it := range items {
			if p.Submit(ctx, it, time.Time{}) != nil {
				return
			}
		}
	}()
	go func() {
		defer close(r.done)
		var got []flow.Item
		defer func() { r.resolved <- got }()
		buf := make([]flow.Item, 0, 256)
		for {
			items, err := p.Resolved(ctx, buf[:0])
			got = append(got, items...)
			if err != nil {
				return
			}
			p.Release(len(items))
		}
	}()
	return r
}

// kill stops the run without draining, as SIGKILL would, and returns what
// it resolved.
func (r *run) kill() []flow.Item {
	r.cancel()
	<-r.done
	r.pipe.Close()
	return <-r.resolved
}

// resumeFrom is where the next run starts: after the last commit mark the
// checkpoint could confirm, as the slot would send again.
func resumeFrom(resolved []flow.Item) int {
	for i := len(resolved) - 1; i >= 0; i-- {
		if resolved[i].Event == nil {
			return i + 1
		}
	}
	return 0
}

// The relay is killed (no drain) and NATS restarted at random points of a
// run of multi-event transactions. After each fault, before the relay runs
// again, every transaction is in the stream entirely or not at all; in the
// end every event is there once, in commit order.
func TestAtomicTransactionsAllOrNothingAcrossFaults(t *testing.T) {
	ns := env.NATS(t)
	nc, js := connect(t, ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectBufSize(-1))
	atomicStream(t, js)
	rng := rand.New(rand.NewPCG(16, uint64(time.Now().UnixNano())))
	sizes := make([]int, 600)
	for i := range sizes {
		sizes[i] = 1 + rng.IntN(12)
	}
	x := makeTxs(t, sizes)
	items := x.items()
	cfg := publish.Config{Stream: "bus", AtomicTransactions: true, AtomicMaxBatch: 50, MaxInFlight: 256,
		AckTimeout: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}

	from := 0
	for round := 0; from < len(items); round++ {
		r := startRun(t, nc, cfg, items[from:])
		// A random point: some items resolved, or all of them.
		target := min(len(items)-from, 1+rng.IntN(400))
		testenv.Eventually(t, time.Minute, func() error {
			s := statsOf(r.pipe)
			if int(s.Published) < target/2 && !(s.Published > 0 && s.InFlight == 0) {
				return fmt.Errorf("round %d: %d published", round, s.Published)
			}
			return nil
		})
		natsFault := round%2 == 1
		if natsFault {
			ns.Stop(t)
		}
		resolved := r.kill()
		if natsFault {
			ns.Start(t)
			testenv.Eventually(t, time.Minute, func() error {
				if !nc.IsConnected() {
					return errors.New("waiting for the relay's connection to come back")
				}
				return nil
			})
		}
		stored := checkAtomicAfterKill(t, ns.URL(), x)
		t.Logf("round %d (nats restart %v): %d resolved, %d of %d transactions stored", round, natsFault, len(resolved), stored, len(x))
		from += resumeFrom(resolved)
		if round > 60 {
			t.Fatalf("no end after %d rounds", round)
		}
	}
	checkMessagesAtomic(t, testenv.StreamMessages(t, ns.URL(), "bus"), x)
}

// checkMessagesAtomic asserts the stream holds every event of x once, in order.
func checkMessagesAtomic(t *testing.T, msgs []testenv.Msg, x txs) {
	t.Helper()
	if stored := checkAtomic(t, msgs, x); stored != len(x) {
		t.Fatalf("%d of %d transactions stored", stored, len(x))
	}
}

// Transactions already stored come again, regrouped (a restart re-reads
// the slot from the last confirmed position): they are not stored twice,
// the run does not loop, and what follows them is stored in order.
func TestAtomicResendOfStoredTransactions(t *testing.T) {
	ns := env.NATS(t)
	nc, js := connect(t, ns.URL())
	atomicStream(t, js)
	sizes := make([]int, 40)
	for i := range sizes {
		sizes[i] = 1 + i%5
	}
	x := makeTxs(t, sizes)
	items := x.items()
	cfg := publish.Config{Stream: "bus", AtomicTransactions: true, AtomicMaxBatch: 20}
	half := len(x.items()) / 2
	r := startRun(t, nc, cfg, items[:half])
	waitStats(t, r.pipe, func(s stats) bool { return s.InFlight == 0 && s.Published > 0 })
	r.kill()
	r = startRun(t, nc, cfg, items)
	waitStats(t, r.pipe, func(s stats) bool { return s.InFlight == 0 && int(s.Published) >= len(x.events())/2 })
	s := statsOf(r.pipe)
	r.kill()
	checkMessagesAtomic(t, testenv.StreamMessages(t, ns.URL(), "bus"), x)
	t.Logf("stats of the second run: %+v", s)
}

func waitStats(t *testing.T, p *publish.Pipeline, ok func(stats) bool) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if s := statsOf(p); !ok(s) {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
}

// A transaction larger than an atomic batch may be, or than the window, is
// published the ordinary way, in order, and counted.
func TestAtomicOversizedTransactionGoesTheOrdinaryWay(t *testing.T) {
	ns := env.NATS(t)
	nc, js := connect(t, ns.URL())
	atomicStream(t, js)
	x := makeTxs(t, []int{3, 25, 2, 4, 70, 1})
	var told atomic.Int64 // events of the transactions reported
	counters := new(publish.Counters)
	cfg := publish.Config{Stream: "bus", AtomicTransactions: true, AtomicMaxBatch: 10, MaxInFlight: 64,
		Counters: counters, OnNotAtomic: func(n int, _ string) { told.Add(int64(n)) }}
	r := startRun(t, nc, cfg, x.items())
	waitStats(t, r.pipe, func(s stats) bool { return s.InFlight == 0 && int(s.Published) == len(x.events()) })
	s := statsOf(r.pipe)
	r.kill()
	msgs := testenv.StreamMessages(t, ns.URL(), "bus")
	checkMessagesAtomic(t, msgs, x)
	// The small ones went in atomic batches, the large ones not.
	for i, m := range msgs {
		atomic := m.Header.Get("Nats-Batch-Id") != ""
		if large := (i >= 3 && i < 28) || (i >= 34 && i < 104); atomic == large {
			t.Fatalf("message %d: batch headers %v, want atomic %v", i, m.Header, !large)
		}
	}
	// Reported sizes are what the relay had seen of each: more than the
	// limit, at most the whole transaction.
	if s.NotAtomic != 2 || counters.NotAtomic.Load() != 2 || told.Load() <= 20 || told.Load() > 95 {
		t.Fatalf("stats %+v, %d events reported: want 2 transactions published the ordinary way", s, told.Load())
	}
}

// Under AtomicTransactions a stream without allow_atomic is refused with
// an error naming the option; `stream ensure` with AllowAtomic turns it on.
func TestAtomicStreamWithoutAllowAtomicIsRefused(t *testing.T) {
	nc, js := connect(t, env.NATS(t).URL())
	ctx := context.Background()
	if _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: "bus", Subjects: []string{"a.>"}}); err != nil {
		t.Fatal(err)
	}
	var off *publish.AtomicDisabledError
	if err := publish.CheckAtomicStream(ctx, js, "bus"); !errors.As(err, &off) || !strings.Contains(err.Error(), "allow_atomic") {
		t.Fatalf("check stream: %v, want an AtomicDisabledError naming allow_atomic", err)
	}
	p, err := publish.New(nc, publish.Config{Stream: "bus", AtomicTransactions: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); !errors.As(err, &off) {
		p.Close()
		t.Fatalf("start: %v, want an AtomicDisabledError", err)
	}
	if _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: "bus", Subjects: []string{"a.>"}, AllowAtomic: true}); err != nil {
		t.Fatal(err)
	}
	if err := publish.CheckAtomicStream(ctx, js, "bus"); err != nil {
		t.Fatalf("after stream ensure: %v", err)
	}
}

// A transaction with an event on a subject the relay's NATS user may not
// publish to cannot be stored atomically: it goes the ordinary way, which
// dead-letters that event, and the transactions around it stay atomic.
func TestAtomicPermissionDeniedGoesTheOrdinaryWay(t *testing.T) {
	srv := deniedServer(t)
	_, js := connect(t, srv.URL())
	atomicStream(t, js)
	nc, _ := connect(t, srv.URL(), nats.UserInfo("relay", "relay-pw"))
	x := makeTxs(t, []int{3, 4, 2})
	x[1][2].Subject = "a.denied.x"
	cfg := publish.Config{Stream: "bus", AtomicTransactions: true, AckTimeout: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	r := startRun(t, nc, cfg, x.items())
	waitStats(t, r.pipe, func(s stats) bool { return s.InFlight == 0 && s.DeadLetters == 1 && s.Published == 8 })
	r.kill()
	msgs := testenv.StreamMessages(t, srv.URL(), "bus")
	if len(msgs) != 8 || msgs[5].ID != x[1][3].EventIDString() {
		t.Fatalf("stream has %d messages, want 8 with the denied event left out", len(msgs))
	}
}

// A transaction larger than the byte bound, right after a small one whose
// flip has not yet released it: once the small one is released, the large
// one goes the ordinary way and reaches the stream (it used to wait for
// the sender's hour-long sleep).
func TestAtomicLargeTransactionAfterASmallOneIsHandedOver(t *testing.T) {
	nc, js := connect(t, env.NATS(t).URL(), nats.ReconnectBufSize(-1))
	atomicStream(t, js)
	p, err := publish.New(nc, publish.Config{Stream: "bus", AtomicTransactions: true, MaxInFlightBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b1, b2 := event(t, 1, "a.x"), event(t, 2, "a.x"), event(t, 3, "a.x")
	b1.Payload, b2.Payload = []byte(strings.Repeat("1", 600)), []byte(strings.Repeat("2", 500))
	for _, it := range []flow.Item{{Event: a}, {Mark: pglogrepl.LSN(1)}, {Event: b1}} {
		if err := p.Submit(ctx, it, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	taken, err := p.Resolved(ctx, make([]flow.Item, 0, 16)) // A is stored; its flip runs
	if err != nil || len(taken) != 2 {
		t.Fatalf("resolved %d items, %v; want A and its end", len(taken), err)
	}
	submitted := make(chan error, 1)
	go func() { submitted <- p.Submit(ctx, flow.Item{Event: b2}, time.Time{}) }()
	testenv.Eventually(t, 10*time.Second, func() error {
		if !p.Full() {
			return errors.New("B2 does not wait for room yet")
		}
		return nil
	})
	p.Release(len(taken)) // A's flip committed: still no room for B2
	got, err := p.Resolved(ctx, make([]flow.Item, 0, 16))
	if err != nil || len(got) == 0 || got[0].Event == nil || got[0].Event.ID != b1.ID {
		t.Fatalf("after A's release: resolved %v, %v; want B1 handed over and stored", got, err)
	}
	p.Release(len(got))
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
}

// B fits the window once A is released; the Release that frees A's room
// also wakes the sender while B2's Submit still shows the window blocked:
// B must still go out as one atomic batch (found by review: 39 of 40 runs
// went the ordinary way once Release woke the sender, before the sender
// asked whether the waiting item fits).
func TestAtomicTransactionThatFitsAfterAReleaseStaysAtomic(t *testing.T) {
	nc, js := connect(t, env.NATS(t).URL(), nats.ReconnectBufSize(-1))
	atomicStream(t, js)
	notAtomic := 0
	for i := range 20 {
		var reasons atomic.Value
		p, err := publish.New(nc, publish.Config{Stream: "bus", AtomicTransactions: true, MaxInFlightBytes: 1000,
			OnNotAtomic: func(events int, reason string) { reasons.Store(reason) }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		a, b1, b2 := event(t, 1, "a.x"), event(t, 2, "a.x"), event(t, 3, "a.x")
		a.Payload = []byte(strings.Repeat("a", 400))
		b1.Payload, b2.Payload = []byte(strings.Repeat("1", 300)), []byte(strings.Repeat("2", 300))
		for _, it := range []flow.Item{{Event: a}, {Mark: pglogrepl.LSN(1)}, {Event: b1}} {
			if err := p.Submit(ctx, it, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		taken, err := p.Resolved(ctx, make([]flow.Item, 0, 16))
		if err != nil || len(taken) != 2 {
			t.Fatalf("resolved %d items, %v; want A and its end", len(taken), err)
		}
		submitted := make(chan error, 1)
		go func() {
			if err := p.Submit(ctx, flow.Item{Event: b2}, time.Time{}); err != nil {
				submitted <- err
				return
			}
			submitted <- p.Submit(ctx, flow.Item{Mark: pglogrepl.LSN(2)}, time.Time{})
		}()
		testenv.Eventually(t, 10*time.Second, func() error {
			if !p.Full() {
				return errors.New("B2 does not wait for room yet")
			}
			return nil
		})
		p.Release(len(taken)) // A's flip committed: now B2 fits
		if err := <-submitted; err != nil {
			t.Fatal(err)
		}
		got := 0
		for got < 3 {
			items, err := p.Resolved(ctx, make([]flow.Item, 0, 16))
			if err != nil {
				t.Fatal(err)
			}
			got += len(items)
			p.Release(len(items))
		}
		if r, ok := reasons.Load().(string); ok {
			notAtomic++
			t.Logf("run %d: B (2 events, %d bytes, window 1000) went the ordinary way: %s", i, b1.Size()+b2.Size(), r)
		}
		p.Close()
		cancel()
	}
	if notAtomic > 0 {
		t.Fatalf("%d of 20 runs: a transaction that fits the window was not published atomically", notAtomic)
	}
}
