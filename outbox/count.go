package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Beginner starts a transaction: *pgxpool.Pool and *pgx.Conn both do.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Count is the unpublished part of bus.outbox from some id on.
type Count struct {
	// Unpublished rows, and the creation time of the oldest (zero if none).
	Unpublished int64
	Oldest      time.Time
	// MinUnpublished is the smallest unpublished id (0 if none); MaxID the
	// largest id of the range (0 if the range is empty).
	MinUnpublished, MaxID int64
}

// countSQL counts from an id on. bus.outbox has, by design, no index on
// published_to_nats (it would stop the flip from being a HOT update), so
// from id 0 this is a sequential scan of the whole table (1.5 s for 5 M rows
// of 200 bytes, warm, on the development machine: minutes for a week of a
// busy outbox), while from a recent id it is a short primary key range scan
// (3 ms for the last 10,000 rows of the same table).
const countSQL = `SELECT count(*) FILTER (WHERE NOT published_to_nats),
       coalesce(min(id) FILTER (WHERE NOT published_to_nats), 0),
       min(created_at) FILTER (WHERE NOT published_to_nats),
       coalesce(max(id), 0)
FROM bus.outbox WHERE id >= $1`

// CountUnpublished counts the unpublished rows of bus.outbox with id >= from, giving up
// after timeout (server side, so the connection stays usable). A timeout
// returns an error for which IsTimeout is true.
func CountUnpublished(ctx context.Context, db Beginner, from int64, timeout time.Duration) (Count, error) {
	var c Count
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", max(timeout.Milliseconds(), 1))); err != nil {
			return err
		}
		var oldest *time.Time
		if err := tx.QueryRow(ctx, countSQL, from).Scan(&c.Unpublished, &c.MinUnpublished, &oldest, &c.MaxID); err != nil {
			return err
		}
		if oldest != nil {
			c.Oldest = *oldest
		}
		return nil
	})
	if err != nil {
		return Count{}, fmt.Errorf("count unpublished outbox rows: %w", err)
	}
	return c, nil
}

// IsTimeout reports whether err is a statement timeout (SQLSTATE 57014).
func IsTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "57014"
}
