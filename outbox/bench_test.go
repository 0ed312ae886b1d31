package outbox

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/migrations/migratetest"
)

var benchPayload = bytes.Repeat([]byte("x"), 256)

// BenchmarkPublish: "tx-per-event" is a service that commits each event
// with its own transaction (a round trip for BEGIN, INSERT and COMMIT each,
// plus the commit's WAL flush); "in-one-tx" is many Publish calls inside one
// transaction, the cost of the INSERT round trip alone.
func BenchmarkPublish(b *testing.B) {
	b.Run("tx-per-event", func(b *testing.B) {
		ctx := context.Background()
		conn := benchConn(b)
		b.ResetTimer()
		for range b.N {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				_, err := Publish(ctx, tx, "orders.created", benchPayload, WithHeader("Trace-Id", "abc"))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("in-one-tx", func(b *testing.B) {
		ctx := context.Background()
		conn := benchConn(b)
		b.ResetTimer()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for range b.N {
				if _, err := Publish(ctx, tx, "orders.created", benchPayload, WithHeader("Trace-Id", "abc")); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkPublishBatch compares the two ways PublishBatch can write, one
// batch per transaction; copyFrom is set from it.
func BenchmarkPublishBatch(b *testing.B) {
	ways := []struct {
		name  string
		write func(context.Context, CopyExecer, []row) error
	}{
		{"insert-unnest", func(ctx context.Context, db CopyExecer, rows []row) error { return insertRows(ctx, db, rows) }},
		{"copy", copyRows},
	}
	for _, size := range []int{10, 100, 1000, 10000} {
		for _, way := range ways {
			b.Run(fmt.Sprintf("%s/%d", way.name, size), func(b *testing.B) {
				ctx := context.Background()
				conn := benchConn(b)
				events := make([]Event, size)
				for i := range events {
					events[i] = Event{Subject: "orders.created", Payload: benchPayload, Headers: map[string][]string{"Trace-Id": {"abc"}}}
				}
				b.ResetTimer()
				for range b.N {
					rows := make([]row, size) // part of the cost, as in PublishBatch
					for i, e := range events {
						r, err := newRow(e)
						if err != nil {
							b.Fatal(err)
						}
						rows[i] = r
					}
					err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return way.write(ctx, tx, rows) })
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

func benchConn(b *testing.B) *pgx.Conn {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, migratetest.DB(b, env))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(ctx) })
	return conn
}
