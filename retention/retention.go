// Package retention deletes published outbox rows once they are older than
// the retention period, in small batches on the leader's lock connection, so
// that no statement holds locks or a snapshot for long and a deposed leader
// cannot prune.
package retention

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/election"
)

// Defaults for Config fields left zero.
const (
	// DefaultRetention matches the stream's default max age: an event can be
	// found in the outbox for as long as in the stream.
	DefaultRetention = 168 * time.Hour
	// DefaultBatch rows per DELETE: a few milliseconds on the lock
	// connection, which the flips share.
	DefaultBatch = 1000
	// DefaultInterval between pruning rounds.
	DefaultInterval = time.Minute
	// DefaultStatementTimeout bounds one batch.
	DefaultStatementTimeout = 10 * time.Second
)

// Config configures a Pruner.
type Config struct {
	// Retention is how long a published row is kept, from its publication
	// (published_at; created_at for rows the poller published). Must be
	// positive: a relay that keeps everything runs no Pruner.
	Retention time.Duration
	// Batch is the most rows one statement deletes (default DefaultBatch).
	Batch int
	// Interval between rounds (default DefaultInterval).
	Interval time.Duration
	// StatementTimeout bounds one batch (default DefaultStatementTimeout).
	StatementTimeout time.Duration
}

// Pruner deletes published rows past retention. Safe for concurrent use.
type Pruner struct {
	cfg Config
	log zerolog.Logger

	pruned   atomic.Uint64
	failures atomic.Uint64
}

// New validates cfg and returns a Pruner; log hears of failures and rounds.
func New(cfg Config, log zerolog.Logger) (*Pruner, error) {
	if cfg.Retention <= 0 {
		return nil, fmt.Errorf("retention %v: must be positive", cfg.Retention)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = DefaultStatementTimeout
	}
	return &Pruner{cfg: cfg, log: log}, nil
}

// Pruned counts the rows deleted.
func (p *Pruner) Pruned() uint64 { return p.pruned.Load() }

// Failures counts the rounds that failed.
func (p *Pruner) Failures() uint64 { return p.failures.Load() }

// Run prunes a round at once and then every Interval until ctx ends; it
// fits relay.Config.WhileLeading. A failed round is logged, counted and
// retried at the next interval: it does not end the leadership term. Run
// returns nil.
func (p *Pruner) Run(ctx context.Context, run election.Runner) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		start := time.Now()
		n, err := p.Prune(ctx, run)
		switch {
		case ctx.Err() != nil, errors.Is(err, election.ErrLost):
			return nil // the term is ending anyway
		case err != nil:
			p.failures.Add(1)
			p.log.Warn().Err(err).Int64("rows", n).Msg("prune published outbox rows")
		case n > 0:
			p.log.Info().Int64("rows", n).Dur("took", time.Since(start)).Dur("retention", p.cfg.Retention).
				Msg("pruned published outbox rows past retention")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pruneSQL deletes, among the next Batch rows by id, those published
// longer ago than the retention. It walks the primary key from the oldest
// row, because bus.outbox has no index on published_to_nats or the times (it
// would stop the flip from being a HOT update). The last column says whether
// the batch reached rows created within the retention: since rows are
// inserted in roughly id order, the rows after those are too young as well,
// and the round ends there.
const pruneSQL = `WITH batch AS (
  SELECT id, created_at FROM bus.outbox WHERE id > $1 ORDER BY id LIMIT $2
), gone AS (
  DELETE FROM bus.outbox o USING batch b
  WHERE o.id = b.id AND o.published_to_nats
    AND coalesce(o.published_at, o.created_at) < now() - $3::interval
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone),
       (SELECT count(*) FROM batch),
       coalesce((SELECT max(id) FROM batch), 0),
       coalesce((SELECT bool_or(created_at >= now() - $3::interval) FROM batch), false)`

// Prune runs one round through run (the lock connection): batch after
// batch, each its own short transaction, until it reaches rows within the
// retention or the end of the table. Unpublished rows are never deleted,
// however old. It returns the rows deleted.
func (p *Pruner) Prune(ctx context.Context, run election.Runner) (int64, error) {
	var total int64
	after := int64(0)
	for ctx.Err() == nil {
		var deleted, scanned, last int64
		var reachedYoung bool
		err := run(ctx, func(ctx context.Context, conn *pgx.Conn) error {
			return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", p.cfg.StatementTimeout.Milliseconds())); err != nil {
					return err
				}
				return tx.QueryRow(ctx, pruneSQL, after, p.cfg.Batch, p.cfg.Retention).Scan(&deleted, &scanned, &last, &reachedYoung)
			})
		})
		if err != nil {
			return total, fmt.Errorf("delete batch after id %d: %w", after, err)
		}
		total += deleted
		p.pruned.Add(uint64(deleted))
		if scanned < int64(p.cfg.Batch) || reachedYoung {
			return total, nil
		}
		after = last
	}
	return total, nil
}
