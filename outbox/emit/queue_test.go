package emit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox/emit"
)

// gauge reads a gauge without labels from reg; a missing one fails the test.
func gauge(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	tb.Fatalf("no gauge %s", name)
	return 0
}

// With NATS away the queue fills: the depth gauge reaches the capacity
// before a single event is dropped, and goes back to zero once NATS returns.
func TestQueueDepthShowsAFullQueueBeforeItDrops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.NATS(t)
	jetStream(t, ns.URL(), "EVENTS", "event.>")
	reg := prometheus.NewRegistry()
	const size = 16
	e, err := emit.New(emit.Config{
		URL:           ns.URL(),
		Stream:        "EVENTS",
		SubjectPrefix: "event",
		QueueSize:     size,
		InFlight:      1,
		// Longer than the test: the publisher stays blocked on the first ack.
		AckTimeout: 5 * time.Minute,
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, reg, "cdcrelay_emitter_queue_capacity_events"); got != size {
		t.Fatalf("capacity %v, want %d", got, size)
	}
	ns.Stop(t)

	// Only Emit adds to the queue, so a depth below the capacity after an
	// Emit means the next one cannot find the queue full.
	full := false
	for range 10 * size {
		e.Emit("tick", 1)
		if gauge(t, reg, "cdcrelay_emitter_queued_events") == size {
			full = true
			break
		}
	}
	if !full {
		t.Fatalf("the queue never filled: %+v", e.Stats())
	}
	if s := e.Stats(); s.QueueFull != 0 {
		t.Fatalf("queue_full drops before the gauge showed a full queue: %+v", s)
	}
	for range size + 1 {
		if !e.Emit("tick", 1) {
			break
		}
	}
	if s := e.Stats(); s.QueueFull == 0 {
		t.Fatalf("a full queue did not drop: %+v", s)
	}

	ns.Start(t)
	testenv.Eventually(t, 30*time.Second, func() error {
		if got := gauge(t, reg, "cdcrelay_emitter_queued_events"); got != 0 {
			return fmt.Errorf("%v events still queued after NATS came back", got)
		}
		return nil
	})
	closeEmitter(t, e)
	if got := gauge(t, reg, "cdcrelay_emitter_queue_capacity_events"); got != 0 {
		t.Fatalf("capacity %v after Close, want 0", got)
	}
}

// Emitters sharing a registry share the gauges: they export the sums.
func TestQueueGaugesSumTheEmittersOfARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := emit.Config{URL: "nats://127.0.0.1:1", Stream: "EVENTS", SubjectPrefix: "event", Registerer: reg, QueueSize: 4}
	a, err := emit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QueueSize = 8
	b, err := emit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeEmitter(t, b)
	if got := gauge(t, reg, "cdcrelay_emitter_queue_capacity_events"); got != 12 {
		t.Fatalf("capacity %v, want 12", got)
	}
	closeEmitter(t, a)
	if got := gauge(t, reg, "cdcrelay_emitter_queue_capacity_events"); got != 8 {
		t.Fatalf("capacity %v after one Close, want 8", got)
	}
	if got := gauge(t, reg, "cdcrelay_emitter_queued_events"); got != 0 {
		t.Fatalf("depth %v, want 0", got)
	}
}
