package migrations

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
)

// BenchmarkFlip measures the relay's flip on the migrated table and reports
// the share of flips that were HOT updates and the WAL written per flipped
// row, for the fillfactor the migration sets and for others. "streaming": each round inserts a batch and flips the
// previous one, as a relay that keeps up does. "backlog": a backlog of rows is
// flipped batch by batch, as after an outage or a backfill.
func BenchmarkFlip(b *testing.B) {
	for _, fillfactor := range []int{85, 70, 50, 45} {
		for _, batch := range []int{100, 1000} {
			for _, mode := range []string{"streaming", "backlog"} {
				b.Run(fmt.Sprintf("fillfactor=%d/batch=%d/%s", fillfactor, batch, mode), func(b *testing.B) {
					benchmarkFlip(b, fillfactor, batch, mode == "backlog")
				})
			}
		}
	}
}

func benchmarkFlip(b *testing.B, fillfactor, batch int, backlog bool) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, env.DB(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := Apply(ctx, conn); err != nil {
		b.Fatal(err)
	}
	must := func(sql string, args ...any) {
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	must(fmt.Sprintf(`ALTER TABLE bus.outbox SET (fillfactor = %d)`, fillfactor))
	insert := func() []int64 {
		var ids []int64
		err := conn.QueryRow(ctx, `WITH i AS (
			INSERT INTO bus.outbox (subject, payload) SELECT 'orders.created', convert_to(repeat('x', 16), 'UTF8') FROM generate_series(1, $1)
			RETURNING id) SELECT array_agg(id ORDER BY id) FROM i`, batch).Scan(&ids)
		if err != nil {
			b.Fatal(err)
		}
		return ids
	}
	const flip = `UPDATE bus.outbox SET published_to_nats = true, published_at = now() WHERE id = ANY($1)`

	var pending [][]int64
	if backlog {
		for range b.N {
			pending = append(pending, insert())
		}
	} else {
		pending = append(pending, insert())
	}
	must(`SELECT pg_stat_force_next_flush()`)
	var upd0, hot0 int64
	stats := `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'bus.outbox'::regclass`
	if err := conn.QueryRow(ctx, stats).Scan(&upd0, &hot0); err != nil {
		b.Fatal(err)
	}
	// WAL of the flips alone, read outside the timed part.
	var flipWAL int64
	walSince := func(from string) int64 {
		var n int64
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn() - $1::pg_lsn`, from).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	walNow := func() string {
		var lsn string
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
			b.Fatal(err)
		}
		return lsn
	}

	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if !backlog {
			pending = append(pending, insert())
		}
		from := walNow()
		b.StartTimer()
		must(flip, pending[i])
		b.StopTimer()
		flipWAL += walSince(from)
		b.StartTimer()
	}
	b.StopTimer()

	must(`SELECT pg_stat_force_next_flush()`)
	var upd, hot int64
	if err := conn.QueryRow(ctx, stats).Scan(&upd, &hot); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(100*float64(hot-hot0)/float64(upd-upd0), "hot%")
	b.ReportMetric(float64(flipWAL)/float64(b.N*batch), "walB/row")
}
