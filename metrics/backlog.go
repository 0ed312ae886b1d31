package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
)

// Defaults for BacklogConfig fields left zero.
const (
	DefaultBacklogInterval    = 15 * time.Second
	DefaultBacklogTimeout     = 5 * time.Second
	DefaultBacklogFullTimeout = 30 * time.Second
)

// BacklogConfig tunes Backlog.
type BacklogConfig struct {
	// Interval between measurements (default DefaultBacklogInterval).
	Interval time.Duration
	// Timeout is the statement_timeout of an incremental measurement
	// (default DefaultBacklogTimeout).
	Timeout time.Duration
	// FullTimeout is the statement_timeout of the first, full count of a
	// leadership term (default DefaultBacklogFullTimeout).
	FullTimeout time.Duration
}

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

// CountUnpublished counts the unpublished rows with id >= from, giving up
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

// Backlog measures the unpublished backlog of bus.outbox without scanning
// the table every time. Run it on the leader only (relay.Config.WhileLeading):
// one process measuring is enough, and a standby's count would be the same.
//
// A term starts with one full count. From then on each measurement scans only
// from a floor: the smallest id still unpublished at the last measurement, or
// else the largest id seen by the measurement before it. Rows below the floor
// were all published when it was set, and any row committed since got an id
// above it, unless its transaction had inserted it more than one interval
// before committing: such a row is not counted (the relay publishes it all
// the same). If the full count times out the floor starts at the table's end,
// and rows that were unpublished before the term began are not counted.
// An incremental measurement that fails keeps the previous count; the age of
// the oldest row keeps growing from its creation time.
type Backlog struct {
	db  Beginner
	cfg BacklogConfig
	log zerolog.Logger

	errs atomic.Uint64

	mu    sync.Mutex
	value Count
	valid bool
}

// NewBacklog returns a Backlog reading through db; log hears of failures.
func NewBacklog(db Beginner, cfg BacklogConfig, log zerolog.Logger) *Backlog {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultBacklogInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultBacklogTimeout
	}
	if cfg.FullTimeout <= 0 {
		cfg.FullTimeout = DefaultBacklogFullTimeout
	}
	return &Backlog{db: db, cfg: cfg, log: log}
}

// Value is the last measurement of the current term; false when there is
// none (not leading, or not measured yet).
func (b *Backlog) Value() (Count, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.value, b.valid
}

// Errors counts failed measurements.
func (b *Backlog) Errors() uint64 { return b.errs.Load() }

func (b *Backlog) set(c Count, valid bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.value, b.valid = c, valid
}

// Run measures every Interval until ctx ends, then forgets the value (the
// next leader measures). It always returns nil: a failed measurement must
// not end a leadership term.
func (b *Backlog) Run(ctx context.Context) error {
	defer b.set(Count{}, false)
	floor, prevMax, err := b.start(ctx)
	if err != nil {
		return nil
	}
	t := time.NewTicker(b.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c, err := CountUnpublished(ctx, b.db, floor, b.cfg.Timeout)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			b.errs.Add(1)
			b.log.Warn().Err(err).Int64("from_id", floor).Msg("measure outbox backlog")
			continue
		}
		b.set(c, true)
		floor, prevMax = nextFloor(floor, prevMax, c)
	}
}

// start makes the term's first, full count, retrying every Interval while
// the database is unreachable. It returns the floor and the largest id
// seen, or an error when ctx ended.
func (b *Backlog) start(ctx context.Context) (floor, prevMax int64, err error) {
	for {
		// The table's end before the full count: rows after it are covered
		// by the next measurement in any case.
		if prevMax, err = b.maxID(ctx); err == nil {
			var c Count
			c, err = CountUnpublished(ctx, b.db, 0, b.cfg.FullTimeout)
			switch {
			case err == nil:
				b.set(c, true)
				floor, prevMax = nextFloor(0, prevMax, c)
				return floor, prevMax, nil
			case IsTimeout(err):
				b.errs.Add(1)
				b.log.Warn().Dur("timeout", b.cfg.FullTimeout).Int64("from_id", prevMax+1).
					Msg("counting the outbox backlog timed out; counting only rows from here on")
				return prevMax + 1, prevMax, nil
			}
		}
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		b.errs.Add(1)
		b.log.Warn().Err(err).Msg("measure outbox backlog")
		t := time.NewTimer(b.cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, 0, ctx.Err()
		case <-t.C:
		}
	}
}

func (b *Backlog) maxID(ctx context.Context) (int64, error) {
	var id int64
	err := pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM bus.outbox`).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("read the outbox's last id: %w", err)
	}
	return id, nil
}

// nextFloor is where the next measurement starts: the oldest row still
// unpublished, or the end of the table as the previous measurement saw it
// (so that transactions that were open then are still counted when they
// commit), whichever is lower. It never goes back below floor, and returns
// the largest id seen so far as the new prevMax.
func nextFloor(floor, prevMax int64, c Count) (next, newMax int64) {
	next = prevMax + 1
	if c.Unpublished > 0 && c.MinUnpublished < next {
		next = c.MinUnpublished
	}
	return max(next, floor), max(prevMax, c.MaxID)
}
