package consume

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Beginner starts a transaction; *pgxpool.Pool and *pgx.Conn are Beginners.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Apply runs effect for d exactly once per consumer: in one transaction it
// records d's event id in the inbox and, unless it was already there, runs
// effect; it commits, and only then acknowledges d. It reports whether
// effect ran.
//
// On error nothing is committed and d is neither acknowledged nor refused;
// the caller chooses between d.Nak and letting AckWait expire. A crash after
// the commit but before the ack brings d back, and Apply then skips effect
// and acknowledges it.
func Apply(ctx context.Context, db Beginner, consumer string, d *Delivery, effect func(ctx context.Context, tx pgx.Tx) error) (bool, error) {
	applied, err := applyInTx(ctx, db, consumer, d, effect)
	if err != nil {
		return false, err
	}
	if err := d.Ack(ctx); err != nil {
		return applied, err
	}
	return applied, nil
}

func applyInTx(ctx context.Context, db Beginner, consumer string, d *Delivery, effect func(ctx context.Context, tx pgx.Tx) error) (bool, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("consume: apply %s: begin: %w", d.EventID, err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // no-op after Commit
	seen, err := Seen(ctx, tx, consumer, d.EventID)
	if err != nil {
		return false, err
	}
	if !seen {
		if err := effect(ctx, tx); err != nil {
			return false, fmt.Errorf("consume: apply %s: %w", d.EventID, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("consume: apply %s: commit: %w", d.EventID, err)
	}
	return !seen, nil
}
