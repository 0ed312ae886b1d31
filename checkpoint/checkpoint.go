// Package checkpoint turns acks into durable progress: it flips
// published_to_nats for the contiguous resolved prefix of the publish window,
// records dead letters, and only then advances the slot position the relay
// may confirm: the end of the last transaction whose every event is acked and
// flipped. A crash anywhere before the confirm re-sends instead of losing.
package checkpoint

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/publish"
)

// DefaultBatch is the most items flipped in one statement. Batches form by
// themselves: while one flip runs, acks accumulate for the next. Half the
// default window, so publishing goes on during a full-size flip.
const DefaultBatch = 4096

// Position is the LSN the relay may confirm to the slot. It only moves
// forward. Safe for concurrent use.
type Position struct{ v atomic.Uint64 }

// Load returns the position.
func (p *Position) Load() pglogrepl.LSN { return pglogrepl.LSN(p.v.Load()) }

// Advance moves the position to lsn if that is further, and reports whether it moved.
func (p *Position) Advance(lsn pglogrepl.LSN) bool {
	for {
		cur := p.v.Load()
		if uint64(lsn) <= cur {
			return false
		}
		if p.v.CompareAndSwap(cur, uint64(lsn)) {
			return true
		}
	}
}

// Watermark returns the last mark among items, the position that becomes
// confirmable once all of them are flipped; ok is false when there is none
// (the batch ends inside a transaction).
func Watermark(items []publish.Item) (lsn pglogrepl.LSN, ok bool) {
	for i := len(items) - 1; i >= 0; i-- {
		if items[i].Event == nil {
			return items[i].Mark, true
		}
	}
	return 0, false
}

// Runner runs fn on the connection that may flip: the leader's lock
// connection, so that a deposed leader cannot flip (election.Lease.Do).
type Runner func(ctx context.Context, fn func(ctx context.Context, conn *pgx.Conn) error) error

// Stats are running counts for metrics. Dead letters are counted where
// they are decided, in publish.Counters.
type Stats struct {
	Flipped atomic.Uint64 // rows of published events flipped (dead letters not counted)
}

// Loop drains the pipeline's resolved items in order, flips them in batches
// through run and advances pos. It returns when ctx ends or a flip fails; a
// failed flip leaves the position where it was, so nothing is lost.
// onMissing, if set, hears of rows Flip gave up on.
func Loop(ctx context.Context, p *publish.Pipeline, run Runner, pos *Position, stats *Stats, onMissing func(ids []int64)) error {
	buf := make([]publish.Item, 0, DefaultBatch)
	for {
		items, err := p.Resolved(ctx, buf[:0])
		if err != nil {
			return err
		}
		missing, err := Flip(ctx, run, items)
		if err != nil {
			return err
		}
		if len(missing) > 0 && onMissing != nil {
			onMissing(missing)
		}
		if lsn, ok := Watermark(items); ok {
			pos.Advance(lsn)
		}
		if stats != nil {
			for _, it := range items {
				if it.Event != nil && it.DeadLetter == nil {
					stats.Flipped.Add(1)
				}
			}
		}
		p.Release(len(items))
	}
}

const flipSQL = `UPDATE bus.outbox SET published_to_nats = true, published_at = now()
WHERE id = ANY($1::bigint[]) AND NOT published_to_nats`

const deadLetterSQL = `INSERT INTO bus.dead_letter (event_id, outbox_id, subject, payload, headers, created_at, error)
VALUES ($1, $2, $3, $4, $5, COALESCE($6, now()), $7)
ON CONFLICT (event_id) DO NOTHING`

// notFlippedSQL returns which of the ids are not (visibly) flipped yet.
const notFlippedSQL = `SELECT coalesce(array_agg(i.id), '{}') FROM unnest($1::bigint[]) AS i(id)
WHERE NOT EXISTS (SELECT FROM bus.outbox o WHERE o.id = i.id AND o.published_to_nats)`

// MaxVisibilityWait bounds how long Flip waits for rows to become visible.
// The walsender may send a transaction as soon as its commit record is
// flushed, a moment before the commit is visible to other snapshots; a flip
// in that moment matches nothing, so Flip checks and retries. A row that
// never shows up (deleted by hand) is given up on after this long: its event
// is in the stream, only the flag is missing.
const MaxVisibilityWait = 10 * time.Second

// Flip marks the events among items published and records the dead letters
// (in one transaction when there are any), and makes sure every row was
// flipped, retrying those not yet visible. It returns the ids it gave up on.
func Flip(ctx context.Context, run Runner, items []publish.Item) (missing []int64, err error) {
	ids := make([]int64, 0, len(items))
	var dead []publish.Item
	for _, it := range items {
		if it.Event == nil {
			continue
		}
		ids = append(ids, it.Event.ID)
		if it.DeadLetter != nil {
			dead = append(dead, it)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	flipped := int64(0)
	err = run(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		if len(dead) == 0 {
			tag, err := conn.Exec(ctx, flipSQL, ids)
			flipped = tag.RowsAffected()
			return err
		}
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, it := range dead {
				if err := insertDeadLetter(ctx, tx, it); err != nil {
					return err
				}
			}
			tag, err := tx.Exec(ctx, flipSQL, ids)
			flipped = tag.RowsAffected()
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("flip %d events: %w", len(ids), err)
	}
	if flipped == int64(len(ids)) {
		return nil, nil
	}
	// Fewer rows than events: re-sent events already flipped (after a
	// restart), or rows not visible yet. Only the latter need another try.
	deadline := time.Now().Add(MaxVisibilityWait)
	wait := time.Millisecond
	for {
		err := run(ctx, func(ctx context.Context, conn *pgx.Conn) error {
			if err := conn.QueryRow(ctx, notFlippedSQL, ids).Scan(&ids); err != nil {
				return err
			}
			if len(ids) == 0 {
				return nil
			}
			_, err := conn.Exec(ctx, flipSQL, ids)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("flip %d late events: %w", len(ids), err)
		}
		if len(ids) == 0 {
			return nil, nil
		}
		if time.Now().After(deadline) {
			return ids, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func insertDeadLetter(ctx context.Context, tx pgx.Tx, it publish.Item) error {
	ev := it.Event
	var headers []byte
	if ev.Headers != nil {
		var err error
		if headers, err = json.Marshal(ev.Headers); err != nil {
			return fmt.Errorf("dead letter %s: encode headers: %w", ev.EventIDString(), err)
		}
	}
	var created *time.Time
	if !ev.CreatedAt.IsZero() {
		created = &ev.CreatedAt
	}
	if _, err := tx.Exec(ctx, deadLetterSQL, ev.EventIDString(), ev.ID, ev.Subject, ev.Payload,
		headers, created, it.DeadLetter.Error()); err != nil {
		return fmt.Errorf("record dead letter %s: %w", ev.EventIDString(), err)
	}
	return nil
}
