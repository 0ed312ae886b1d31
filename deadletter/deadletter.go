// Package deadletter owns bus.dead_letter, where the events JetStream refused
// for good wait for an operator: it records them (inside the checkpoint's
// flip transaction, so a dead letter is durable before the slot passes its
// event), lists and counts them, and replays them through bus.outbox.
package deadletter

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/flow"
)

// DB is what statements run on: a *pgx.Conn, a *pgxpool.Pool or a pgx.Tx.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Row is a row of bus.dead_letter. Its JSON form is what
// `cdcrelay deadletter list --json` prints (payloads base64).
type Row struct {
	EventID        string          `json:"event_id"`
	OutboxID       int64           `json:"outbox_id"`
	Subject        string          `json:"subject"`
	Payload        []byte          `json:"payload"`
	Headers        json.RawMessage `json:"headers,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	Error          string          `json:"error"`
	DeadLetteredAt time.Time       `json:"dead_lettered_at"`
	ReplayedAt     *time.Time      `json:"replayed_at"`
}

// recordSQL records a dead letter once per event: a resend after a restart
// refused again changes nothing. A replayed one refused again is waiting
// again, with the new reason and row: whether or not the replay stayed to
// see it (Confirm), it must not stay hidden as replayed. (The parameters,
// not EXCLUDED, so that the role needs SELECT on no more columns.)
const recordSQL = `INSERT INTO bus.dead_letter (event_id, outbox_id, subject, payload, headers, created_at, error)
VALUES ($1, $2, $3, $4, $5, COALESCE($6, now()), $7)
ON CONFLICT (event_id) DO UPDATE
   SET outbox_id = $2, error = $7, dead_lettered_at = now(), replayed_at = NULL
 WHERE bus.dead_letter.replayed_at IS NOT NULL`

// Queue adds to b the statement that records ev as refused for reason, so
// that the caller's batch records it in its own transaction and round trip:
// the checkpoint flips the event's row in the same transaction. Its result
// is one Exec among the batch's results, in the order queued.
func Queue(b *pgx.Batch, ev *flow.Event, reason error) error {
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
	b.Queue(recordSQL, ev.EventIDString(), ev.ID, ev.Subject, ev.Payload, headers, created, reason.Error())
	return nil
}

const columns = `event_id::text, outbox_id, subject, payload, headers, created_at, error, dead_lettered_at, replayed_at`

func scan(row pgx.CollectableRow) (Row, error) {
	var d Row
	var headers []byte
	err := row.Scan(&d.EventID, &d.OutboxID, &d.Subject, &d.Payload, &headers, &d.CreatedAt, &d.Error, &d.DeadLetteredAt, &d.ReplayedAt)
	if len(headers) > 0 {
		d.Headers = headers
	}
	return d, err
}

// List returns at most limit dead letters, oldest first: those not replayed
// yet, or all of them.
func List(ctx context.Context, db DB, all bool, limit int) ([]Row, error) {
	rows, err := db.Query(ctx, `SELECT `+columns+` FROM bus.dead_letter
WHERE $1 OR replayed_at IS NULL ORDER BY dead_lettered_at, event_id LIMIT $2`, all, limit)
	if err != nil {
		return nil, fmt.Errorf("read bus.dead_letter: %w", err)
	}
	list, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("read bus.dead_letter: %w", err)
	}
	return list, nil
}

// Waiting returns the event ids of the dead letters not replayed yet,
// oldest first.
func Waiting(ctx context.Context, db DB) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT event_id::text FROM bus.dead_letter WHERE replayed_at IS NULL ORDER BY dead_lettered_at, event_id`)
	if err != nil {
		return nil, fmt.Errorf("read bus.dead_letter: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read bus.dead_letter: %w", err)
	}
	return ids, nil
}

// Counts summarises bus.dead_letter.
type Counts struct {
	Total      int64
	Unreplayed int64
	// LatestAt is when the newest dead letter was recorded; zero when
	// there is none.
	LatestAt time.Time
}

// Count counts the dead letters.
func Count(ctx context.Context, db DB) (Counts, error) {
	var c Counts
	if err := db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE replayed_at IS NULL), coalesce(max(dead_lettered_at), 'epoch')
FROM bus.dead_letter`).Scan(&c.Total, &c.Unreplayed, &c.LatestAt); err != nil {
		return c, fmt.Errorf("read bus.dead_letter: %w", err)
	}
	if c.LatestAt.Unix() == 0 {
		c.LatestAt = time.Time{}
	}
	return c, nil
}
