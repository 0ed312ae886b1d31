package consume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoEventID is returned by Seen for a delivery without a usable event id:
// deduplicating on uuid.Nil would skip every such event after the first.
var ErrNoEventID = errors.New("consume: event has no id (Nats-Msg-Id missing or not a UUID)")

// Execer runs one statement; pgx.Tx, *pgx.Conn and *pgxpool.Pool are Execers.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Seen records that consumer has handled eventID and reports whether it had
// been recorded before, in which case the caller must skip the effects. Call
// it inside the transaction that applies the effects: the record then commits
// with them or not at all, and a concurrent duplicate blocks on the row until
// this transaction ends.
func Seen(ctx context.Context, tx Execer, consumer string, eventID uuid.UUID) (bool, error) {
	if eventID == uuid.Nil {
		return false, ErrNoEventID
	}
	if consumer == "" {
		return false, errors.New("consume: inbox consumer name is empty")
	}
	tag, err := tx.Exec(ctx,
		`INSERT INTO bus.inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		consumer, eventID)
	if err != nil {
		return false, fmt.Errorf("consume: record %s in inbox of %s: %w", eventID, consumer, err)
	}
	return tag.RowsAffected() == 0, nil
}

// PruneInbox deletes inbox rows older than olderThan, batch rows per
// statement so that no statement holds many locks or much WAL at once. It
// returns how many rows it deleted. Keep olderThan well beyond the longest
// time a message can still be redelivered (AckWait × MaxDeliver, plus how
// long the stream may be replayed from): a pruned id no longer deduplicates.
func PruneInbox(ctx context.Context, db Execer, olderThan time.Duration, batch int) (int64, error) {
	if olderThan <= 0 || batch <= 0 {
		return 0, fmt.Errorf("consume: prune inbox: need olderThan > 0 and batch > 0, got %v and %d", olderThan, batch)
	}
	// A cutoff fixed once lets the loop end even while rows keep ageing past
	// it. It comes from this host's clock: retention is measured in hours or
	// days, so skew against the server's seen_at does not matter.
	cutoff := time.Now().Add(-olderThan)
	var total int64
	for {
		tag, err := db.Exec(ctx, `
			DELETE FROM bus.inbox
			WHERE (consumer, event_id) IN (
				SELECT consumer, event_id FROM bus.inbox WHERE seen_at < $1 LIMIT $2
			)`, cutoff, batch)
		if err != nil {
			return total, fmt.Errorf("consume: prune inbox: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
	}
}
