package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/replication"
)

// originTakeover bounds how long a new leader waits for the backend of the
// session that held the flip origin before (a killed or deposed leader's,
// or this process's previous term's) to let go of it: a backend that exits
// frees its advisory locks before its replication origin, so the leader
// lock can come first by a moment. After that, the term streams unfiltered.
const originTakeover = 2 * time.Second

// guardWatch is how often a filtering term checks that the outbox still
// refuses inserts made under a replication origin.
const guardWatch = time.Second

// originFilter decides whether this term's stream, starting at start,
// filters by origin, and returns pgoutput's origin option ("" for the
// default). It filters on PostgreSQL 16 and later, unless configured not
// to, when the outbox's guard has refused inserts made under a replication
// origin since before start (replication.OriginGuard) and the role may use
// replication origins: it then marks the lock connection, on which the
// relay flips, records dead letters, marks slots and prunes, with the
// slot's flip origin, and the stream, started with origin 'none', never
// decodes any of it. Heartbeats come from the pool, without an origin.
//
// Not filtering is always safe (the walsender decodes the flips and
// pgoutput drops them), so every reason not to is logged, not returned;
// errors are those of the lock connection.
func (r *Relay) originFilter(ctx context.Context, version int, start pglogrepl.LSN, run election.Runner) (string, error) {
	if r.cfg.Unfiltered || version < replication.OriginVersion {
		return "", nil // before 16 pgoutput cannot filter, and an origin alone changes nothing
	}
	unfiltered := func(reason error) (string, error) {
		r.log.Info().Err(reason).Msg("the walsender decodes the relay's flips too (no origin filter)")
		return "", nil
	}
	since, err := replication.OriginGuard(ctx, r.pool)
	if err != nil {
		return unfiltered(err)
	}
	if start < since {
		return unfiltered(fmt.Errorf("the slot resumes at %s, before the outbox's origin guard (%s): a term that starts after it is confirmed past filters", start, since))
	}
	missing, err := replication.OriginGrantsMissing(ctx, r.pool)
	if err != nil {
		return unfiltered(err)
	}
	if len(missing) > 0 {
		return unfiltered(fmt.Errorf("the relay's role may not execute %v", missing))
	}
	own := replication.FlipOrigin(r.cfg.Slot)
	deadline := time.Now().Add(originTakeover)
	retry := time.NewTicker(10 * time.Millisecond)
	defer retry.Stop()
	for {
		var setup error
		err = run(ctx, func(ctx context.Context, conn *pgx.Conn) error {
			setup = replication.SetupOrigin(ctx, conn, own)
			return nil
		})
		switch {
		case err != nil:
			return "", err
		case setup == nil:
			return "none", nil
		case !errors.Is(setup, replication.ErrOriginInUse) || time.Now().After(deadline):
			return unfiltered(setup)
		}
		select {
		case <-retry.C:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// watchGuard ends a filtering term (returns an error) once the outbox no
// longer refuses inserts made under a replication origin, or returns nil
// when ctx ends: the next term streams unfiltered. A failed look is logged
// and tried again at the next tick.
func (r *Relay) watchGuard(ctx context.Context) error {
	t := time.NewTicker(guardWatch)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
		_, err := replication.OriginGuard(ctx, r.pool)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, replication.ErrUnguarded):
			return fmt.Errorf("the stream filters by origin, but %w: the next term streams unfiltered", err)
		case err != nil:
			r.log.Warn().Err(err).Msg("check the outbox's origin guard")
		}
	}
}
