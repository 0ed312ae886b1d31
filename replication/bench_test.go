package replication_test

import (
	"context"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/migrations/migratetest"
	"github.com/cdcrelay/cdcrelay/replication"
)

// BenchmarkReceive streams b.N 256-byte outbox rows, written beforehand in
// 1000-row transactions, through Receive: one op is one Insert message, and
// frames/s counts every frame (Begin, Relation, Commit and keepalives too).
// The walsender's decoding is usually the ceiling; allocs/op shows what the
// receive path itself costs.
func BenchmarkReceive(b *testing.B) {
	u := migratetest.DB(b, env)
	pool := testenvPool(b, u)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := replication.Connect(ctx, u)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	slot := slotName()
	if _, err := c.CreateSlot(ctx, slot); err != nil {
		b.Fatal(err)
	}
	for left := b.N; left > 0; left -= 1000 {
		if _, err := pool.Exec(ctx, `INSERT INTO bus.outbox (subject, payload)
			SELECT 'bench.receive', convert_to(repeat('x', 256), 'UTF8') FROM generate_series(1, $1)`, min(left, 1000)); err != nil {
			b.Fatal(err)
		}
	}
	opts := replication.StartOptions{Publication: publication, Binary: c.ServerVersion() >= 140000}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := c.Start(ctx, slot, 0, opts); err != nil {
		b.Fatal(err)
	}
	frames, inserts := 0, 0
	deadline := time.Now().Add(30 * time.Second)
	for inserts < b.N {
		f, err := c.Receive(deadline)
		if err != nil {
			b.Fatalf("after %d inserts: %v", inserts, err)
		}
		frames++
		if f.Kind == replication.FrameXLogData && f.Data[0] == 'I' {
			inserts++
		}
		if frames%65536 == 0 {
			deadline = time.Now().Add(30 * time.Second)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(frames)/time.Since(start).Seconds(), "frames/s")
}
