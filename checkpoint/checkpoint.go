// Package checkpoint turns acks into durable progress: it flips
// published_to_nats for the contiguous resolved prefix of the publish window,
// records dead letters in the same transaction, and only then acks the end
// of the last transaction whose every event is acked and flipped to the slot
// session, which confirms it once the flip's WAL is flushed. A crash anywhere
// before the confirm re-sends instead of losing.
package checkpoint

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/deadletter"
	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/flow"
)

// DefaultBatch is the most items flipped in one statement. Batches form by
// themselves: while one flip runs, acks accumulate for the next. Half the
// default window, so publishing goes on during a full-size flip.
const DefaultBatch = 4096

// linger is how long a small batch waits for more acks before it is
// flipped. The flip is off the delivery path (the event is in the stream
// already) and only delays the slot's confirmation and the window's room,
// so at low rates one round trip and one commit per few milliseconds cost
// less than one per event, for the relay, PostgreSQL and every walsender
// decoding the flips. A batch of lingerBelow items or more goes at once, and
// so does any batch while the window is full (a small window, or large
// events against its byte bound): waiting would only idle.
const (
	linger      = 5 * time.Millisecond
	lingerBelow = 256
)

// Watermark returns the last mark among items, the position that becomes
// confirmable once all of them are flipped; ok is false when there is none
// (the batch ends inside a transaction).
func Watermark(items []flow.Item) (lsn pglogrepl.LSN, ok bool) {
	for i := len(items) - 1; i >= 0; i-- {
		if items[i].Event == nil {
			return items[i].Mark, true
		}
	}
	return 0, false
}

// Window is where resolved items come from, in order: published and acked,
// or dead-lettered (publish.Pipeline). Release hands back the room of the n
// oldest items taken, once their flip has committed: until then they count
// against the window's bounds. Full reports whether an item waits for room:
// then no batch lingers, since only Release lets more in.
type Window interface {
	Resolved(ctx context.Context, buf []flow.Item) ([]flow.Item, error)
	Release(n int)
	Full() bool
}

// Stats are running counts for metrics. Dead letters are counted where
// they are decided, in publish.Counters.
type Stats struct {
	Flipped atomic.Uint64 // rows of published events flipped (dead letters not counted)
}

// Acker hears what each flip made confirmable (slot.Session.Ack): every
// transaction up to done is flipped (done is 0 when the batch ended inside a
// transaction), by flips whose commits end at or before walEnd.
type Acker interface {
	Ack(done, walEnd pglogrepl.LSN)
}

// Loop takes the window's resolved items in order, flips them in batches
// through run, tells acks what each flip made confirmable and hands the
// items' room back to the window. It returns when ctx ends or a flip fails;
// a failed flip leaves the position where it was, so nothing is lost.
// onMissing, if set, hears of rows Flip gave up on.
func Loop(ctx context.Context, w Window, run election.Runner, acks Acker, stats *Stats, onMissing func(ids []int64)) error {
	buf := make([]flow.Item, 0, DefaultBatch)
	lingering := time.NewTimer(linger) // one timer for every linger
	lingering.Stop()
	for {
		items, err := w.Resolved(ctx, buf[:0])
		if err != nil {
			return err
		}
		if len(items) < lingerBelow && !w.Full() {
			lingering.Reset(linger)
			select {
			case <-lingering.C:
			case <-ctx.Done():
				lingering.Stop()
				return ctx.Err()
			}
			// Returns at once: items is not empty.
			if items, err = w.Resolved(ctx, items); err != nil {
				return err
			}
		}
		res, err := Flip(ctx, run, items)
		if err != nil {
			return err
		}
		if len(res.Missing) > 0 && onMissing != nil {
			onMissing(res.Missing)
		}
		done, _ := Watermark(items)
		acks.Ack(done, res.WALEnd)
		if stats != nil {
			for _, it := range items {
				if it.Event != nil && it.DeadLetter == nil {
					stats.Flipped.Add(1)
				}
			}
		}
		w.Release(len(items))
	}
}

const flipSQL = `UPDATE bus.outbox SET published_to_nats = true, published_at = now()
WHERE id = ANY($1::bigint[]) AND NOT published_to_nats`

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

// FlipResult is what one Flip did.
type FlipResult struct {
	// Missing are the ids of rows Flip gave up on: they never became visible.
	Missing []int64
	// WALEnd is a WAL position read after the flip committed: its commit
	// record, and every dead letter recorded with it, ends at or before it.
	WALEnd pglogrepl.LSN
}

// Flip marks the events among items published and records the dead letters
// in the same transaction, and makes sure every row was flipped, retrying
// those not yet visible. The runner's session may commit asynchronously:
// FlipResult.WALEnd says how far WAL must be flushed before the flip counts.
func Flip(ctx context.Context, run election.Runner, items []flow.Item) (FlipResult, error) {
	ids := make([]int64, 0, len(items))
	var dead []flow.Item
	for _, it := range items {
		if it.Event == nil {
			continue
		}
		ids = append(ids, it.Event.ID)
		if it.DeadLetter != nil {
			dead = append(dead, it)
		}
	}
	var res FlipResult
	if len(ids) == 0 {
		return res, nil
	}
	flipped := int64(0)
	err := run(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		var err error
		flipped, err = flipOnce(ctx, conn, ids, dead, &res)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("flip %d events: %w", len(ids), err)
	}
	if flipped == int64(len(ids)) {
		return res, nil
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
			_, err := flipOnce(ctx, conn, ids, nil, &res)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("flip %d late events: %w", len(ids), err)
		}
		if len(ids) == 0 {
			return res, nil
		}
		if time.Now().After(deadline) {
			res.Missing = ids
			return res, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return res, ctx.Err()
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

const walSQL = `SELECT pg_current_wal_insert_lsn()::text`

// flipOnce records the dead letters and flips ids in one transaction, then
// reads the WAL insert position after its commit, all in one round trip. It
// returns how many rows the flip changed.
func flipOnce(ctx context.Context, conn *pgx.Conn, ids []int64, dead []flow.Item, res *FlipResult) (int64, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for _, it := range dead {
		if err := deadletter.Queue(b, it.Event, it.DeadLetter); err != nil {
			return 0, err
		}
	}
	b.Queue(flipSQL, ids)
	b.Queue("COMMIT")
	b.Queue(walSQL)
	br := conn.SendBatch(ctx, b)
	n, err := readFlip(br, dead, res)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return n, err
}

func readFlip(br pgx.BatchResults, dead []flow.Item, res *FlipResult) (int64, error) {
	if _, err := br.Exec(); err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	for _, it := range dead {
		if _, err := br.Exec(); err != nil {
			return 0, fmt.Errorf("record dead letter %s: %w", it.Event.EventIDString(), err)
		}
	}
	tag, err := br.Exec()
	if err != nil {
		return 0, err
	}
	if _, err := br.Exec(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	if err := br.QueryRow().Scan(&res.WALEnd); err != nil {
		return 0, fmt.Errorf("read WAL position: %w", err)
	}
	return tag.RowsAffected(), nil
}
