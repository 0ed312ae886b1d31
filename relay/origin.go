package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/replication"
	"github.com/cdcrelay/cdcrelay/slot"
)

// originTakeover bounds how long a new leader waits for the backend of the
// session that held the flip origin before (a killed or deposed leader's,
// or this process's previous term's) to let go of it: a backend that exits
// frees its advisory locks before its replication origin, so the leader
// lock can come first by a moment. After that, the term streams unfiltered.
const originTakeover = 2 * time.Second

const (
	// guardWatch is how often, at the least, a filtering term proves that
	// the outbox still refuses inserts made under a replication origin; it
	// confirms no further than its last proof.
	guardWatch = time.Second
	// guardSpacing is the least time between two proofs: a position held
	// back by the last proof asks for the next one at once, but a busy
	// stream, always held back, proves at most this often.
	guardSpacing = 50 * time.Millisecond
	// guardCheckTimeout bounds one proof.
	guardCheckTimeout = 5 * time.Second
	// guardUnproven ends a filtering term whose proofs kept failing: its
	// position has stood still meanwhile.
	guardUnproven = 15 * time.Second
)

// errOriginGrants says the relay's role may not use replication origins.
var errOriginGrants = errors.New("the relay's role may not use replication origins")

// flipOrigin is what a term knows about the origin filter before its slot
// is prepared: whether the lock connection is marked with the slot's flip
// origin, and since when the outbox's guard has held.
type flipOrigin struct {
	marked bool
	since  pglogrepl.LSN
}

// markFlips marks the lock connection, on which the relay flips, records
// dead letters, marks slots and prunes, with the slot's flip origin, on
// PostgreSQL 16 and later, unless configured not to, when the outbox's
// guard refuses inserts made under a replication origin
// (replication.OriginGuard) and the role may use replication origins. It
// runs before the slot is prepared, so a backfill's flips are marked too.
// Marked writes are what a stream with origin 'none' never decodes (see
// filter); heartbeats come from the pool, without an origin.
//
// Not filtering is always safe (the walsender decodes the flips and
// pgoutput drops them), so every reason not to is logged, not returned;
// errors are those of the lock connection.
func (r *Relay) markFlips(ctx context.Context, version int, run election.Runner) (flipOrigin, error) {
	if r.cfg.Unfiltered || version < replication.OriginVersion {
		return flipOrigin{}, nil // before 16 pgoutput cannot filter, and an origin alone changes nothing
	}
	since, err := replication.OriginGuard(ctx, r.pool)
	if err != nil {
		r.unfiltered(err)
		return flipOrigin{}, nil
	}
	missing, err := replication.OriginGrantsMissing(ctx, r.pool)
	if err != nil {
		r.unfiltered(err)
		return flipOrigin{}, nil
	}
	if len(missing) > 0 {
		r.unfiltered(fmt.Errorf("%w: GRANT EXECUTE ON FUNCTION %s to its role", errOriginGrants, strings.Join(missing, ", ")))
		return flipOrigin{}, nil
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
			return flipOrigin{}, err
		case setup == nil:
			return flipOrigin{marked: true, since: since}, nil
		case !errors.Is(setup, replication.ErrOriginInUse) || time.Now().After(deadline):
			r.unfiltered(setup)
			return flipOrigin{}, nil
		}
		select {
		case <-retry.C:
		case <-ctx.Done():
			return flipOrigin{}, ctx.Err()
		}
	}
}

// filter returns the origin option to stream from start with: "none" when
// the flips are marked and the guard held before start, so that no
// unguarded insert lies ahead of the stream; "" otherwise.
func (r *Relay) filter(o flipOrigin, start pglogrepl.LSN) string {
	if !o.marked {
		return ""
	}
	if start < o.since {
		r.unfiltered(fmt.Errorf("the slot resumes at %s, before the outbox's origin guard (%s): a term that starts after it is confirmed past filters", start, o.since))
		return ""
	}
	return "none"
}

// unfiltered logs why a term streams without the origin filter: as a
// warning when a grant or privilege is missing, which an operator fixes.
func (r *Relay) unfiltered(reason error) {
	ev := r.log.Info()
	var pgErr *pgconn.PgError
	if errors.Is(reason, errOriginGrants) || errors.As(reason, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
		ev = r.log.Warn()
	}
	ev.Err(reason).Msg("the walsender decodes the relay's flips too (no origin filter)")
}

// proveGuard keeps a filtering term's position within what the outbox's
// guard is proven to have covered: it reads the WAL insert position, then
// checks that the guard is still the one recorded at since, and lets sess
// confirm up to that position; again whenever the position is held back
// (at most every guardSpacing) and at least every guardWatch. When the
// guard changed it ends the term (returns an error): the position stands
// before the change, and the next term decodes everything after it,
// inserts made under an origin included. Proofs that keep failing for
// guardUnproven end the term too; it returns nil when ctx ends.
func (r *Relay) proveGuard(ctx context.Context, since pglogrepl.LSN, sess *slot.Session) error {
	watch := time.NewTicker(guardWatch)
	defer watch.Stop()
	proven := time.Now()
	for {
		err := r.proveOnce(ctx, since, sess)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, replication.ErrUnguarded):
			return fmt.Errorf("the stream filters by origin, but %w: the next term streams unfiltered", err)
		case err == nil:
			proven = time.Now()
		case time.Since(proven) > guardUnproven:
			return fmt.Errorf("the outbox's origin guard unproven for %v, so the position stood still: %w", guardUnproven, err)
		default:
			r.log.Warn().Err(err).Msg("check the outbox's origin guard; the confirmed position waits for it")
		}
		spacing := time.NewTimer(guardSpacing)
		select {
		case <-spacing.C:
		case <-ctx.Done():
			spacing.Stop()
			return nil
		}
		select {
		case <-watch.C:
		case <-sess.Held():
		case <-ctx.Done():
			return nil
		}
	}
}

// proveOnce runs one proof on one pooled connection (both statements must
// reach the same server, in that order).
func (r *Relay) proveOnce(ctx context.Context, since pglogrepl.LSN, sess *slot.Session) error {
	ctx, cancel := context.WithTimeout(ctx, guardCheckTimeout)
	defer cancel()
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("prove the outbox's origin guard: %w", err)
	}
	defer conn.Release()
	at, now, err := replication.ProveGuard(ctx, conn.Conn())
	if err != nil {
		return err
	}
	if now != since {
		return fmt.Errorf("%w: recorded again at %s since the term started (at %s)", replication.ErrUnguarded, now, since)
	}
	sess.Guarded(at)
	return nil
}
