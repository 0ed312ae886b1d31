package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/cdcrelay/cdcrelay/checkpoint"
	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/replication"
)

// errLeaseLost ends a term whose lock connection failed.
var errLeaseLost = errors.New("leadership lost")

// lead runs one leadership term: prepare the slot (creating it and
// backfilling when it is missing, lost or unverified), then stream until ctx
// ends (graceful: drain and confirm), the lease is lost, or something fails.
func (r *Relay) lead(ctx context.Context, lease *election.Lease) error {
	// work runs the pipeline and the checkpoint; it outlives ctx during a
	// graceful drain and is cancelled at once when the lease is lost.
	work, cancelWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelWork(nil)
	g, work := errgroup.WithContext(work)
	g.Go(func() error {
		select {
		case <-lease.Lost():
			return fmt.Errorf("%w: %v", errLeaseLost, lease.Err())
		case <-work.Done():
			return nil
		}
	})

	rc, err := replication.Connect(ctx, r.cfg.DatabaseURL)
	if err != nil {
		cancelWork(nil)
		return errors.Join(fmt.Errorf("replication connection: %w", err), g.Wait())
	}
	defer func() { _ = rc.Close(context.WithoutCancel(ctx)) }()

	pipe, err := publish.New(r.nc, r.pipelineConfig())
	if err != nil {
		cancelWork(nil)
		return errors.Join(err, g.Wait())
	}
	if err := pipe.Start(work); err != nil {
		cancelWork(nil)
		return errors.Join(fmt.Errorf("%w: %w", errNATS, err), g.Wait())
	}
	defer pipe.Close()
	r.pipeline.Store(pipe)
	defer r.pipeline.Store(nil)

	g.Go(func() error {
		err := checkpoint.Loop(work, pipe, asyncCommit(lease.Do), &r.position, &r.flips, func(ids []int64) {
			r.log.Warn().Ints64("outbox_ids", ids).Msg("published events whose outbox rows never became visible; not flipped")
		})
		if work.Err() != nil {
			return nil
		}
		return fmt.Errorf("checkpoint: %w", err)
	})

	// From here on errors end the term through the group: the reader stops
	// when work is cancelled by a failing worker or a lost lease.
	read, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	stopRead := context.AfterFunc(work, cancelRead)
	defer stopRead()
	g.Go(func() error {
		defer cancelWork(nil)
		start, err := r.prepareSlot(read, rc, pipe)
		if err != nil {
			if read.Err() != nil {
				return nil
			}
			return err
		}
		return r.stream(read, work, rc, pipe, start)
	})
	for _, task := range r.cfg.WhileLeading {
		g.Go(func() error { return task(work, checkpoint.Runner(lease.Do)) })
	}
	if r.cfg.HeartbeatInterval > 0 && rc.ServerVersion() >= 140000 {
		g.Go(func() error { r.emitHeartbeats(work); return nil })
	}
	err = g.Wait()
	r.streaming.Store(false)
	if err == nil && ctx.Err() == nil {
		return errors.New("replication stream ended")
	}
	return err
}

func (r *Relay) pipelineConfig() publish.Config {
	c := r.cfg.Publish
	c.Counters = &r.counters
	c.OnRetry = func(err error) {
		r.log.Warn().Err(err).Msg("NATS publish failed; resending from the first unacked event")
	}
	return c
}

// prepareSlot returns the position to start streaming from. A slot that is
// missing, lost, or whose initial backfill never completed is (re)created and
// the unpublished rows visible in its snapshot are published first: they
// committed before the slot's consistent point, so snapshot plus stream miss
// nothing. An old LSN is never combined with a new slot.
func (r *Relay) prepareSlot(ctx context.Context, rc *replication.Conn, pipe *publish.Pipeline) (pglogrepl.LSN, error) {
	slot, err := replication.LookupSlot(ctx, r.pool, r.cfg.Slot)
	if err != nil {
		return 0, err
	}
	if slot.Exists && slot.Active {
		// We hold the lock, so whoever reads the slot lost leadership.
		r.log.Warn().Int32("pid", slot.ActivePID).Msg("slot active for a stale backend; terminating it")
		if err := replication.TerminateActive(ctx, r.pool, r.cfg.Slot); err != nil {
			return 0, err
		}
	}
	verified := false
	if slot.Exists {
		verified, err = backfillDone(ctx, r.pool, r.cfg.Slot)
		if err != nil {
			return 0, err
		}
	}
	switch {
	case slot.Exists && slot.WALStatus != "lost" && verified:
		r.position.Advance(slot.ConfirmedFlush)
		return slot.ConfirmedFlush, nil
	case slot.Exists:
		reason := "its initial backfill did not complete"
		if slot.WALStatus == "lost" {
			reason = "its WAL was removed (wal_status lost)"
		}
		r.log.Warn().Str("slot", r.cfg.Slot).Msgf("recreating slot: %s", reason)
		if err := rc.DropSlot(ctx, r.cfg.Slot); err != nil {
			return 0, err
		}
	}
	return r.createAndBackfill(ctx, rc, pipe)
}

func (r *Relay) createAndBackfill(ctx context.Context, rc *replication.Conn, pipe *publish.Pipeline) (pglogrepl.LSN, error) {
	snap, err := rc.CreateSlot(ctx, r.cfg.Slot)
	if err != nil {
		return 0, err
	}
	r.log.Info().Str("slot", r.cfg.Slot).Stringer("consistent_point", snap.ConsistentPoint).Msg("created slot; backfilling unpublished rows")
	n, err := r.backfill(ctx, snap, pipe)
	if err != nil {
		return 0, err
	}
	if err := waitIdle(ctx, pipe); err != nil {
		return 0, err
	}
	if err := markBackfillDone(ctx, r.pool, r.cfg.Slot, snap.ConsistentPoint); err != nil {
		return 0, err
	}
	r.log.Info().Int("events", n).Msg("backfill complete; streaming")
	r.position.Advance(snap.ConsistentPoint)
	return snap.ConsistentPoint, nil
}

// asyncCommit wraps the lock connection's runner so that the flips it runs
// commit without waiting for their WAL to reach disk. A flip lost in a
// PostgreSQL crash only means its events are sent again (and dropped as
// duplicates), and it cannot be lost behind a confirmed position: the slot's
// position is persisted by a checkpoint, which first flushes all WAL written
// before it, the flip's commit included. Without the wait, a flip no longer
// queues behind the writers' fsyncs, nor adds its own.
func asyncCommit(run checkpoint.Runner) checkpoint.Runner {
	set := false
	return func(ctx context.Context, fn func(ctx context.Context, conn *pgx.Conn) error) error {
		return run(ctx, func(ctx context.Context, conn *pgx.Conn) error {
			if !set {
				if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
					return fmt.Errorf("set synchronous_commit for flips: %w", err)
				}
				set = true
			}
			return fn(ctx, conn)
		})
	}
}
