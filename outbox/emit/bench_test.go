package emit_test

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/outbox/emit"
)

// BenchmarkEmitNATSDown is the caller's cost of Emit while the server is
// stopped under a connected emitter: what a request handler pays during an
// outage. Run with -benchtime=100000x for the 100,000 calls.
func BenchmarkEmitNATSDown(b *testing.B) {
	ns := env.NATS(b)
	jetStream(b, ns.URL(), "EVENTS", "event.>")
	e := startEmitter(b, ns.URL())
	ns.Stop(b)

	lat := make([]time.Duration, b.N)
	body := order{ID: 1, Total: "12.50"}
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		e.Emit("order.created", body)
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	reportLatency(b, lat)
	closeEmitter(b, e)
	s := e.Stats()
	if s.Total() != uint64(b.N) {
		b.Fatalf("stats %+v account for %d of %d events", s, s.Total(), b.N)
	}
	b.ReportMetric(float64(s.Dropped())/float64(b.N), "dropped/op")
}

// BenchmarkEmitNATSUp is delivered throughput: every event is offered until
// the queue takes it, and the clock stops once Close has every ack.
func BenchmarkEmitNATSUp(b *testing.B) {
	ns := env.NATS(b)
	jetStream(b, ns.URL(), "EVENTS", "event.>")
	e := startEmitter(b, ns.URL())

	lat := make([]time.Duration, b.N)
	body := order{ID: 1, Total: "12.50"}
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		for !e.Emit("order.created", body) {
			runtime.Gosched()
		}
		lat[i] = time.Since(t0)
	}
	closeEmitter(b, e)
	elapsed := time.Since(start)
	b.StopTimer()
	s := e.Stats()
	if s.Delivered != uint64(b.N) {
		b.Fatalf("stats %+v: want all %d delivered", s, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	reportLatency(b, lat)
}

func startEmitter(b *testing.B, url string) *emit.Emitter {
	b.Helper()
	e, err := emit.New(emit.Config{
		URL:           url,
		Stream:        "EVENTS",
		SubjectPrefix: "event",
		AckTimeout:    time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil || !e.Connected() {
		b.Fatalf("start: %v, connected %v", err, e.Connected())
	}
	return e
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "p50-ns/call")
	b.ReportMetric(at(0.99), "p99-ns/call")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns/call")
}
