package metrics

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cdcrelay/cdcrelay/outbox"
	"github.com/jackc/pgx/v5"
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
	db  outbox.Beginner
	cfg BacklogConfig
	log zerolog.Logger

	errs atomic.Uint64

	mu    sync.Mutex
	value outbox.Count
	valid bool
}

// NewBacklog returns a Backlog reading through db; log hears of failures.
func NewBacklog(db outbox.Beginner, cfg BacklogConfig, log zerolog.Logger) *Backlog {
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
func (b *Backlog) Value() (outbox.Count, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.value, b.valid
}

// Errors counts failed measurements.
func (b *Backlog) Errors() uint64 { return b.errs.Load() }

func (b *Backlog) set(c outbox.Count, valid bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.value, b.valid = c, valid
}

// Run measures every Interval until ctx ends, then forgets the value (the
// next leader measures). It always returns nil: a failed measurement must
// not end a leadership term.
func (b *Backlog) Run(ctx context.Context) error {
	defer b.set(outbox.Count{}, false)
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
		c, err := outbox.CountUnpublished(ctx, b.db, floor, b.cfg.Timeout)
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
			var c outbox.Count
			c, err = outbox.CountUnpublished(ctx, b.db, 0, b.cfg.FullTimeout)
			switch {
			case err == nil:
				b.set(c, true)
				floor, prevMax = nextFloor(0, prevMax, c)
				return floor, prevMax, nil
			case outbox.IsTimeout(err):
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
func nextFloor(floor, prevMax int64, c outbox.Count) (next, newMax int64) {
	next = prevMax + 1
	if c.Unpublished > 0 && c.MinUnpublished < next {
		next = c.MinUnpublished
	}
	return max(next, floor), max(prevMax, c.MaxID)
}
