package slot

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/replication"
)

// Mark is a slot's row in bus.relay_slot. A slot is trusted only once its
// initial backfill completed: a crash during the backfill leaves the slot
// behind, and streaming from it would skip the rows the backfill had not
// published. bus.relay_slot records completion, with the slot's consistent
// point, and is cleared before a slot is created.
type Mark struct {
	Done            bool          // the slot's initial backfill completed
	ConsistentPoint pglogrepl.LSN // the consistent point of the slot it completed for
}

// ReadMark reads the mark of the named slot; no row is no mark.
func ReadMark(ctx context.Context, q replication.Querier, slot string) (Mark, error) {
	var m Mark
	err := q.QueryRow(ctx, `SELECT backfilled_at IS NOT NULL, consistent_point::text FROM bus.relay_slot WHERE slot_name = $1`, slot).
		Scan(&m.Done, &m.ConsistentPoint)
	if errors.Is(err, pgx.ErrNoRows) {
		return Mark{}, nil
	}
	if err != nil {
		return Mark{}, fmt.Errorf("read bus.relay_slot: %w", err)
	}
	return m, nil
}

// WriteMark records that the slot created at consistentPoint is backfilled,
// or with 0 forgets any mark. It commits synchronously, under the lease.
func WriteMark(ctx context.Context, run election.Runner, slot string, consistentPoint pglogrepl.LSN) error {
	err := run(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
				return err
			}
			// An upsert either way: the relay's role has no DELETE here.
			_, err := tx.Exec(ctx, `INSERT INTO bus.relay_slot (slot_name, consistent_point, backfilled_at)
VALUES ($1, $2::pg_lsn, CASE WHEN $2::pg_lsn = '0/0' THEN NULL ELSE now() END)
ON CONFLICT (slot_name) DO UPDATE SET consistent_point = EXCLUDED.consistent_point, backfilled_at = EXCLUDED.backfilled_at`,
				slot, consistentPoint.String())
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("record backfill of slot %s in bus.relay_slot: %w", slot, err)
	}
	return nil
}
