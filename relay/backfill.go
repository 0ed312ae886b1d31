package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/decode"
	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/replication"
)

const backfillSQL = `SELECT id, event_id, subject, payload, headers::text, created_at
FROM bus.outbox WHERE NOT published_to_nats ORDER BY id`

// backfill publishes every unpublished row visible in the slot's exported
// snapshot. Rows are read in id order: their commit order is not known, and
// id order is the order their writers inserted them.
func (r *Relay) backfill(ctx context.Context, snap replication.Snapshot, pipe *publish.Pipeline) (int, error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("backfill: %w", err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, fmt.Errorf("backfill: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := snap.Import(ctx, tx); err != nil {
		return 0, fmt.Errorf("backfill: %w", err)
	}
	rows, err := tx.Query(ctx, backfillSQL)
	if err != nil {
		return 0, fmt.Errorf("backfill: query: %w", err)
	}
	defer rows.Close()
	n := 0
	progress := time.Now()
	for rows.Next() {
		ev := &flow.Event{}
		var headers *string
		var created *time.Time
		if err := rows.Scan(&ev.ID, &ev.EventID, &ev.Subject, &ev.Payload, &headers, &created); err != nil {
			return n, fmt.Errorf("backfill: scan: %w", err)
		}
		if headers != nil {
			ev.Headers, ev.Problem = decode.ParseHeaders([]byte(*headers))
		}
		if created != nil {
			ev.CreatedAt = *created
		}
		decode.CheckEvent(ev)
		if err := pipe.Submit(ctx, flow.Item{Event: ev, Backfill: true}, time.Time{}); err != nil {
			return n, fmt.Errorf("backfill: %w", err)
		}
		n++
		if time.Since(progress) >= 5*time.Second {
			r.log.Info().Int("events", n).Msg("backfill progress")
			progress = time.Now()
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("backfill: read: %w", err)
	}
	return n, nil
}

// waitDrained waits until everything submitted is acked, flipped and released.
func waitDrained(ctx context.Context, pipe *publish.Pipeline) error {
	select {
	case <-pipe.Drained():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
