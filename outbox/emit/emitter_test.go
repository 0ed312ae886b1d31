package emit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/internal/natsserver"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox/emit"
)

type order struct {
	ID    int    `json:"id"`
	Total string `json:"total"`
}

func TestEnvelopeOnTheWire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.NATS(t)
	js := jetStream(t, ns.URL(), "EVENTS", "event.>")
	e, err := emit.New(emit.Config{
		URL:           ns.URL(),
		Stream:        "EVENTS",
		SubjectPrefix: "event.{chain_id}",
		PrefixValues:  map[string]string{"chain_id": "42"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer closeEmitter(t, e)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.Connected() {
		t.Fatal("not connected after Start against a running server")
	}
	before := time.Now().UTC()
	if !e.Emit("order.created", order{ID: 1, Total: "9.99"}) {
		t.Fatal("Emit did not queue")
	}
	if !e.EmitWithRequestID("req-7", "order.paid", order{ID: 1, Total: "9.99"}) {
		t.Fatal("EmitWithRequestID did not queue")
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if s := e.Stats(); s.Delivered != 2 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	stream, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		seq       uint64
		subject   string
		keys      []string
		requestID string
	}{
		{1, "event.42.order.created", []string{"body", "timestamp", "version"}, ""},
		{2, "event.42.order.paid", []string{"body", "requestId", "timestamp", "version"}, "req-7"},
	} {
		msg, err := stream.GetMsg(ctx, tc.seq)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Subject != tc.subject {
			t.Errorf("seq %d: subject %q, want %q", tc.seq, msg.Subject, tc.subject)
		}
		id, err := uuid.Parse(msg.Header.Get(jetstream.MsgIDHeader))
		if err != nil || id.Version() != 7 {
			t.Errorf("seq %d: Nats-Msg-Id %q is not a UUIDv7 (%v)", tc.seq, msg.Header.Get(jetstream.MsgIDHeader), err)
		}
		// The key set pins the shape: requestId absent, never null, when unset.
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(msg.Data, &raw); err != nil {
			t.Fatalf("seq %d: %v in %s", tc.seq, err, msg.Data)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range raw {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, tc.keys) {
			t.Errorf("seq %d: keys %v, want %v in %s", tc.seq, keys, tc.keys, msg.Data)
		}
		if got := string(raw["version"]); got != `"v1"` {
			t.Errorf("seq %d: version %s", tc.seq, got)
		}
		if got := string(raw["body"]); got != `{"id":1,"total":"9.99"}` {
			t.Errorf("seq %d: body %s", tc.seq, got)
		}
		var ts string
		if err := json.Unmarshal(raw["timestamp"], &ts); err != nil {
			t.Fatal(err)
		}
		stamp, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || !strings.HasSuffix(ts, "Z") || stamp.Before(before.Add(-time.Second)) {
			t.Errorf("seq %d: timestamp %q: want RFC 3339 UTC at emit time (%v)", tc.seq, ts, err)
		}
		var body order
		env := emit.Envelope{Body: &body}
		if err := json.Unmarshal(msg.Data, &env); err != nil {
			t.Fatal(err)
		}
		if env.Version != emit.EnvelopeVersion || env.RequestID != tc.requestID || body != (order{ID: 1, Total: "9.99"}) {
			t.Errorf("seq %d: decoded %+v body %+v", tc.seq, env, body)
		}
	}
}

// TestEmitNATSDownAccountsForEveryEvent stops the server under a connected
// emitter and emits 100,000 events: every one is delivered or counted as a
// drop, and memory stays bounded by the queue and the in-flight window.
func TestEmitNATSDownAccountsForEveryEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.NATS(t)
	jetStream(t, ns.URL(), "EVENTS", "event.>")
	e, err := emit.New(emit.Config{
		URL:           ns.URL(),
		Stream:        "EVENTS",
		SubjectPrefix: "event",
		QueueSize:     1024,
		InFlight:      256,
		AckTimeout:    500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ns.Stop(t)

	const n = 100_000
	for i := range n {
		e.Emit("tick", order{ID: i, Total: "1.00"})
	}
	closeEmitter(t, e)
	s := e.Stats()
	if s.Total() != n {
		t.Fatalf("stats %+v account for %d events, want %d", s, s.Total(), n)
	}
	if s.QueueFull == 0 || s.Serialize != 0 {
		t.Fatalf("stats %+v: want queue_full drops and no serialize drops", s)
	}
	t.Logf("stats with NATS down: %+v", s)
}

// TestStartWithNothingListening starts against a port with no server: the
// host goes on, emits are counted drops, one line is logged, and a server
// started later on that port is picked up by the background retry.
func TestStartWithNothingListening(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	logs := &logBuffer{}
	e, err := emit.New(emit.Config{
		URL:            url,
		Stream:         "EVENTS",
		SubjectPrefix:  "event",
		ConnectTimeout: 200 * time.Millisecond,
		RetryMin:       20 * time.Millisecond,
		RetryMax:       200 * time.Millisecond,
		Logger:         zerolog.New(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer closeEmitter(t, e)

	if err := e.Start(ctx); err != nil {
		t.Fatalf("Start with nothing listening: %v, want nil", err)
	}
	if err := e.Start(ctx); err != nil { // after a failure, Start tries again
		t.Fatalf("second Start: %v", err)
	}
	if e.Connected() {
		t.Fatal("connected with nothing listening")
	}
	for range 10 {
		if e.Emit("early", 1) {
			t.Fatal("Emit queued while disabled")
		}
	}
	if s := e.Stats(); s.Publish != 10 || s.Total() != 10 {
		t.Fatalf("stats %+v, want 10 publish drops", s)
	}
	if n := logs.lines("warn"); n != 1 {
		t.Fatalf("%d warn lines, want exactly 1:\n%s", n, logs.buf.String())
	}

	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	// A server without the stream is a misconfiguration: still disabled.
	js := jetStream(t, url, "")
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"event.>"}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if !e.Connected() {
			return errors.New("emitter has not connected")
		}
		return nil
	})
	if !e.Emit("late", 2) {
		t.Fatal("Emit did not queue once connected")
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if s := e.Stats(); s.Delivered != 1 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	if n := logs.lines("warn"); n != 1 {
		t.Fatalf("%d warn lines after retries, want exactly 1:\n%s", n, logs.buf.String())
	}
	if n := logs.lines("info"); n != 1 {
		t.Fatalf("%d info lines, want the one saying it connected:\n%s", n, logs.buf.String())
	}
}

func TestStartTwiceAndAfterClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.NATS(t)
	jetStream(t, ns.URL(), "EVENTS", "event.>")
	e, err := emit.New(emit.Config{URL: ns.URL(), Stream: "EVENTS", SubjectPrefix: "event"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := e.Start(ctx); err != nil || !e.Connected() {
			t.Fatalf("Start: %v, connected %v", err, e.Connected())
		}
	}
	closeEmitter(t, e)
	closeEmitter(t, e) // idempotent
	if err := e.Start(ctx); !errors.Is(err, emit.ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
	if e.Emit("after", 1) {
		t.Fatal("Emit queued after Close")
	}
	if s := e.Stats(); s.Publish != 1 {
		t.Fatalf("stats %+v, want one publish drop", s)
	}
}

// TestCloseDrains closes right after a burst: everything queued is published
// and acknowledged before Close returns.
func TestCloseDrains(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.NATS(t)
	js := jetStream(t, ns.URL(), "EVENTS", "event.>")
	e, err := emit.New(emit.Config{URL: ns.URL(), Stream: "EVENTS", SubjectPrefix: "event", QueueSize: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := range n {
		if !e.Emit("burst", i) {
			t.Fatalf("event %d not queued", i)
		}
	}
	closeEmitter(t, e)
	if s := e.Stats(); s.Delivered != n || s.Dropped() != 0 {
		t.Fatalf("stats %+v, want %d delivered", s, n)
	}
	stream, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if got := stream.CachedInfo().State.Msgs; got != n {
		t.Fatalf("stream holds %d messages, want %d", got, n)
	}
}

// TestAckDrops: a subject the stream does not capture is published (the
// prefix check passes) but refused, and counted as an ack drop.
func TestAckDrops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.NATS(t)
	jetStream(t, ns.URL(), "EVENTS", "event.kept.>")
	e, err := emit.New(emit.Config{URL: ns.URL(), Stream: "EVENTS", SubjectPrefix: "event"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil || !e.Connected() {
		t.Fatalf("Start: %v, connected %v", err, e.Connected())
	}
	e.Emit("kept.x", 1)
	e.Emit("lost", 2)
	closeEmitter(t, e)
	if s := e.Stats(); s.Delivered != 1 || s.Ack != 1 || s.Total() != 2 {
		t.Fatalf("stats %+v, want 1 delivered and 1 ack drop", s)
	}
}

type panicky struct{}

func (panicky) MarshalJSON() ([]byte, error) { panic("boom") }

func TestSerializeDropsNeverPanic(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := emit.New(emit.Config{URL: "nats://127.0.0.1:1", Stream: "EVENTS", SubjectPrefix: "event", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer closeEmitter(t, e)
	e.Emit("chan", make(chan int))
	e.Emit("panics", panicky{})
	e.Emit("bad..name", 1)
	e.Emit("wild.*", 1)
	e.Emit("", 1)
	e.Emit("ok", 1) // valid, but the emitter is not started
	if s := e.Stats(); s.Serialize != 5 || s.Publish != 1 || s.Total() != 6 {
		t.Fatalf("stats %+v, want 5 serialize and 1 publish drops", s)
	}
	if got := dropped(t, reg); got["serialize"] != 5 || got["publish"] != 1 || got["queue_full"] != 0 || got["ack"] != 0 {
		t.Fatalf("cdcrelay_emitter_dropped_total %v", got)
	}

	var nilEmitter *emit.Emitter
	if nilEmitter.Emit("x", 1) || nilEmitter.Stats() != (emit.Stats{}) || nilEmitter.Close(context.Background()) != nil {
		t.Fatal("a nil emitter is not a silent no-op")
	}
}

func TestEmittersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := emit.Config{URL: "nats://127.0.0.1:1", Stream: "EVENTS", SubjectPrefix: "event", Registerer: reg}
	a, err := emit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := emit.New(cfg)
	if err != nil {
		t.Fatalf("second emitter on one registry: %v", err)
	}
	a.Emit("x", 1)
	b.Emit("x", 1)
	if got := dropped(t, reg); got["publish"] != 2 {
		t.Fatalf("shared counter %v, want publish 2", got)
	}
	if a.Stats().Publish != 1 || b.Stats().Publish != 1 {
		t.Fatalf("per-emitter stats %+v %+v", a.Stats(), b.Stats())
	}
}

func dropped(tb testing.TB, reg *prometheus.Registry) map[string]float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "cdcrelay_emitter_dropped_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if len(got) != 4 {
		tb.Fatalf("want all four reasons exported, got %v", got)
	}
	return got
}

// TestPublishesAgainAfterNATSRestart: once connected, the emitter rides out
// a server restart on its own; events emitted afterwards are delivered.
func TestPublishesAgainAfterNATSRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.NATS(t)
	jetStream(t, ns.URL(), "EVENTS", "event.>")
	e, err := emit.New(emit.Config{URL: ns.URL(), Stream: "EVENTS", SubjectPrefix: "event", AckTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer closeEmitter(t, e)
	if err := e.Start(ctx); err != nil || !e.Connected() {
		t.Fatalf("Start: %v, connected %v", err, e.Connected())
	}
	ns.Restart(t)
	testenv.Eventually(t, 30*time.Second, func() error {
		e.Emit("after.restart", 1)
		if s := e.Stats(); s.Delivered == 0 {
			return fmt.Errorf("nothing delivered since the restart: %+v", s)
		}
		return nil
	})
}
