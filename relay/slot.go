package relay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/replication"
	"github.com/cdcrelay/cdcrelay/slot"
)

// slotTakeover bounds how long a new leader waits for a deposed leader's
// walsender to let go of the slot, or for a drop.
const slotTakeover = 30 * time.Second

// prepareSlot returns the position to start streaming from. A slot that is
// missing, invalidated, or not marked as backfilled in its present
// incarnation is (re)created and the unpublished rows visible in its
// snapshot are published first: they committed before the slot's consistent
// point, so snapshot plus stream miss nothing. An old LSN is never combined
// with a new slot. Everything that changes the slot or its mark runs through
// run, on the lock connection: a deposed leader can do none of it.
func (r *Relay) prepareSlot(ctx context.Context, rc *replication.Conn, pipe *publish.Pipeline, run election.Runner) (pglogrepl.LSN, error) {
	found, err := replication.LookupSlot(ctx, r.pool, r.cfg.Slot)
	if err != nil {
		return 0, err
	}
	if found.Exists {
		if err := r.ownSlot(found); err != nil {
			return 0, err
		}
	}
	if found.Exists && found.Active {
		// We hold the lock, so whoever reads the slot lost leadership.
		r.log.Warn().Int32("pid", found.ActivePID).Msg("slot active for a stale backend; terminating it")
		tctx, cancel := context.WithTimeout(ctx, slotTakeover)
		err := run(tctx, func(ctx context.Context, conn *pgx.Conn) error {
			return replication.TerminateActive(ctx, conn, r.cfg.Slot)
		})
		cancel()
		if err != nil {
			return 0, err
		}
		// The deposed walsender may have confirmed more before it ended:
		// resume from there, not from the position read before.
		if found, err = replication.LookupSlot(ctx, r.pool, r.cfg.Slot); err != nil {
			return 0, err
		}
	}
	m, err := slot.ReadMark(ctx, r.pool, r.cfg.Slot)
	if err != nil {
		return 0, err
	}
	reason := ""
	switch {
	case !found.Exists:
		reason = "it does not exist"
	case found.Invalidated:
		reason = invalidation(found)
	case !m.Done:
		reason = "its initial backfill did not complete"
	case found.ConfirmedFlush < m.ConsistentPoint:
		reason = fmt.Sprintf("it is not the slot whose backfill completed (confirmed %s, before that slot's consistent point %s)", found.ConfirmedFlush, m.ConsistentPoint)
	default:
		return found.ConfirmedFlush, nil
	}
	ev := r.log.Warn()
	if !found.Exists && !m.Done {
		ev = r.log.Info() // a first start
	}
	ev.Str("slot", r.cfg.Slot).Msgf("creating slot and backfilling: %s", reason)
	// Forget the mark first, durably: whatever happens from here on, a slot
	// is trusted only once its own backfill completes.
	if err := slot.WriteMark(ctx, run, r.cfg.Slot, 0); err != nil {
		return 0, err
	}
	if found.Exists {
		dctx, cancel := context.WithTimeout(ctx, slotTakeover)
		err := run(dctx, func(ctx context.Context, conn *pgx.Conn) error {
			return replication.Drop(ctx, conn, r.cfg.Slot)
		})
		cancel()
		if err != nil {
			return 0, err
		}
	}
	return r.createAndBackfill(ctx, rc, pipe, run)
}

// ownSlot refuses a same-named slot that another deployment made: the relay
// must neither take it over nor drop it.
func (r *Relay) ownSlot(s replication.Slot) error {
	if s.Type == "logical" && s.Plugin == "pgoutput" && s.Database == r.database {
		return nil
	}
	return &replication.CheckError{
		Problem: fmt.Sprintf("replication slot %s is a %s slot (plugin %q) of database %q, not a pgoutput slot of %q", s.Name, s.Type, s.Plugin, s.Database, r.database),
		Setting: replication.SettingSlot,
		Fix:     "drop that slot if nothing uses it",
	}
}

func (r *Relay) createAndBackfill(ctx context.Context, rc *replication.Conn, pipe *publish.Pipeline, run election.Runner) (pglogrepl.LSN, error) {
	snap, err := r.createSlot(ctx, rc)
	if err != nil {
		return 0, err
	}
	r.log.Info().Str("slot", r.cfg.Slot).Stringer("consistent_point", snap.ConsistentPoint).Msg("created slot; backfilling unpublished rows")
	n, err := r.backfill(ctx, snap, pipe)
	if err != nil {
		return 0, err
	}
	if err := waitDrained(ctx, pipe); err != nil {
		return 0, err
	}
	// Synchronous: the mark's commit also flushes the backfill's flips.
	if err := slot.WriteMark(ctx, run, r.cfg.Slot, snap.ConsistentPoint); err != nil {
		return 0, err
	}
	r.log.Info().Int("events", n).Msg("backfill complete; streaming")
	return snap.ConsistentPoint, nil
}

// createSlot creates the slot, within SlotCreateTimeout. Creation waits for
// every transaction that had an xid when it began; while it waits, the
// blocking sessions are logged and shown as a stall.
func (r *Relay) createSlot(ctx context.Context, rc *replication.Conn) (replication.Snapshot, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.SlotCreateTimeout)
	defer cancel()
	// A failover slot only while synchronized_standby_slots names standbys
	// (see failover.go); before 17 the flag means nothing.
	var failover bool
	if rc.ServerVersion() >= 170000 {
		var err error
		if failover, _, err = r.failoverWanted(cctx); err != nil {
			return replication.Snapshot{}, err
		}
	}
	watch, stopWatch := context.WithCancel(cctx)
	var (
		wg       sync.WaitGroup
		blockers string
	)
	wg.Add(1)
	go func() { defer wg.Done(); blockers = r.watchSlotCreation(watch, rc.BackendPID()) }()
	snap, err := rc.CreateSlotFailover(cctx, r.cfg.Slot, failover)
	stopWatch()
	wg.Wait()
	if err == nil {
		r.stalls.clear(StallSlotCreation)
		return snap, nil
	}
	if ctx.Err() == nil && cctx.Err() != nil {
		// Closing the connection does not stop a walsender waiting on a
		// lock, and it would hold the half-made slot: end it.
		if _, kerr := r.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, int32(rc.BackendPID())); kerr != nil {
			r.log.Warn().Err(kerr).Uint32("pid", rc.BackendPID()).Msg("could not end the walsender whose slot creation timed out")
		}
		if blockers == "" {
			blockers = "no blocking transaction seen"
		}
		return snap, fmt.Errorf("create slot %s: gave up after %s waiting for transactions open when creation began: %s", r.cfg.Slot, r.cfg.SlotCreateTimeout, blockers)
	}
	return snap, err
}

// watchSlotCreation looks every second at what the creating walsender waits
// for, and reports it (a warning when it changes, and the stall) until ctx
// ends. It returns the last blockers seen.
func (r *Relay) watchSlotCreation(ctx context.Context, pid uint32) string {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return last
		case <-t.C:
		}
		bs, err := replication.Blockers(ctx, r.pool, pid)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn().Err(err).Msg("slot creation is slow; could not see what it waits for")
			}
			continue
		}
		desc := replication.Describe(bs)
		if desc == "" {
			continue
		}
		if desc != last {
			r.log.Warn().Str("slot", r.cfg.Slot).Str("blocked_by", desc).
				Msg("slot creation waits for transactions that were open when it began; end them, or creation is retried after the slot creation timeout")
		}
		last = desc
		r.stalls.set(StallSlotCreation, "creating the slot waits for "+desc, time.Time{})
	}
}
