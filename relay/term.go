package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/cdcrelay/cdcrelay/checkpoint"
	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/replication"
	"github.com/cdcrelay/cdcrelay/slot"
)

// housekeepingDelay is how long a term's housekeeping (heartbeats, the
// restart point, Config.WhileLeading tasks) waits for the stream to start
// before it runs anyway: a backfill can take long.
const housekeepingDelay = time.Second

// awaitStream blocks until the stream is up or housekeepingDelay has
// passed, and reports whether the term still runs. A take-over's own
// queries come first: at the start of a term the heartbeat took the pool's
// one warm connection, so the origin guard's read had to open a new one, and
// a pruning round holds the lock connection the flip origin is set up on.
func awaitStream(work context.Context, up <-chan struct{}) bool {
	t := time.NewTimer(housekeepingDelay)
	defer t.Stop()
	select {
	case <-up:
	case <-t.C:
	case <-work.Done():
		return false
	}
	return true
}

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
	defer r.stalls.clear(StallSlotCreation)

	rc, err := r.connectReplication(ctx)
	if err != nil {
		cancelWork(nil)
		return errors.Join(fmt.Errorf("replication connection: %w", err), g.Wait())
	}
	defer func() { _ = rc.Close(context.WithoutCancel(ctx)) }()
	receiveTimeout, err := r.receiveTimeout(ctx, rc)
	if err != nil {
		cancelWork(nil)
		return errors.Join(err, g.Wait())
	}

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

	// The session, and the position it confirms, belong to this term: it
	// starts from this term's slot, never from what an earlier term confirmed
	// (perhaps on another primary).
	sess := slot.New(rc, pipe, slot.Config{
		Name: r.cfg.Slot, Publication: r.cfg.Publication, StatusInterval: r.cfg.StatusInterval,
		Flush: lease.Do, Heartbeats: &r.heartbeat, Trace: r.cfg.Publish.DiagnosticHeaders,
		ReceiveTimeout: receiveTimeout,
	})
	r.session.Store(sess)
	g.Go(func() error {
		err := checkpoint.Loop(work, pipe, asyncCommit(lease.Do), sess, &r.flips, r.flipGaveUp)
		if work.Err() != nil {
			return nil
		}
		return fmt.Errorf("checkpoint: %w", err)
	})

	// From here on errors end the term through the group: the reader stops
	// when work is cancelled by a failing worker or a lost lease.
	up := make(chan struct{}) // closed once the stream has started
	read, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	stopRead := context.AfterFunc(work, cancelRead)
	defer stopRead()
	g.Go(func() error {
		defer cancelWork(nil)
		flips, err := r.markFlips(read, rc.ServerVersion(), lease.Do)
		var start pglogrepl.LSN
		if err == nil {
			start, err = r.prepareSlot(read, rc, pipe, lease.Do)
		}
		if err != nil {
			if read.Err() != nil {
				return nil
			}
			return err
		}
		failover, err := r.alignFailover(read, rc)
		if err != nil {
			if read.Err() != nil {
				return nil
			}
			return err
		}
		if rc.ServerVersion() >= 170000 {
			g.Go(func() error { return r.watchFailover(work, failover, 2*r.cfg.StatusInterval) })
		}
		origin := r.filter(flips, start)
		if origin != "" {
			g.Go(func() error { return r.proveGuard(work, flips.since, sess) })
		}
		return r.stream(read, work, sess, start, origin, func() { close(up) })
	})
	for _, task := range r.cfg.WhileLeading {
		g.Go(func() error {
			if !awaitStream(work, up) {
				return nil
			}
			return task(work, election.Runner(lease.Do))
		})
	}
	g.Go(func() error {
		if awaitStream(work, up) {
			r.keepRestartClose(work, rc.ServerVersion())
		}
		return nil
	})
	if r.cfg.HeartbeatInterval > 0 && rc.SupportsMessages() {
		g.Go(func() error {
			if awaitStream(work, up) {
				r.emitHeartbeats(work)
			}
			return nil
		})
	}
	err = g.Wait()
	r.streaming.Store(false)
	if err == nil && ctx.Err() == nil {
		return errors.New("replication stream ended")
	}
	return err
}

// connectReplication opens the term's replication connection, within the
// receive timeout: a server whose path drops packets would otherwise hold
// the term in the connect for good.
func (r *Relay) connectReplication(ctx context.Context) (*replication.Conn, error) {
	if r.cfg.ReceiveTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cfg.ReceiveTimeout)
		defer cancel()
	}
	return replication.Connect(ctx, r.cfg.DatabaseURL)
}

// receiveTimeout is the term's limit on the walsender's silence: the
// configured one, raised to outlast the walsender's own wal_sender_timeout.
// While it replays a large transaction it publishes nothing of (one on
// other tables, say), the walsender reads the relay's messages, and so
// answers a keepalive request, only every half of that timeout; a shorter
// limit would end term after term on the same transaction.
func (r *Relay) receiveTimeout(ctx context.Context, rc *replication.Conn) (time.Duration, error) {
	if r.cfg.ReceiveTimeout <= 0 {
		return r.cfg.ReceiveTimeout, nil
	}
	// Bounded like the connect: on a path that drops packets the read would
	// otherwise hold the term, and the lease, for good.
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReceiveTimeout)
	defer cancel()
	sender, err := rc.SenderTimeout(ctx)
	if err != nil {
		return 0, err
	}
	return receiveLimit(r.cfg.ReceiveTimeout, sender, r.cfg.StatusInterval), nil
}

// receiveLimit is the configured receive timeout, at least the walsender's
// timeout plus two status intervals (the margin for a keepalive request
// sent at half the limit); an off walsender timeout bounds nothing.
func receiveLimit(configured, sender, status time.Duration) time.Duration {
	if configured <= 0 || sender <= 0 {
		return configured
	}
	return max(configured, sender+2*status)
}

func (r *Relay) pipelineConfig() publish.Config {
	c := r.cfg.Publish
	c.Counters = &r.counters
	c.OnRetry = func(err error) {
		r.log.Warn().Err(err).Msg("NATS publish failed; resending from the first unacked event")
	}
	c.OnNotAtomic = func(events int, reason string) {
		r.log.Warn().Int("events", events).Str("reason", reason).
			Msg("transaction published the ordinary way, not as one atomic batch: consumers may see part of it before the rest")
	}
	return c
}

// flipGaveUp hears of published events whose rows never became visible to
// the flip. Their position is confirmed all the same (the events are in the
// stream), so this must be loud: a log line, a metric and readiness.
func (r *Relay) flipGaveUp(ids []int64) {
	r.flipsGivenUp.Add(uint64(len(ids)))
	detail := fmt.Sprintf("%d published events' outbox rows never became visible to the flip (e.g. id %d); "+
		"if synchronous replication waits on the relay, events in the stream may be missing on a standby", len(ids), ids[0])
	r.stalls.set(StallFlipGaveUp, detail, time.Now().Add(flipGaveUpShown))
	r.log.Error().Ints64("outbox_ids", ids).Msg("published events whose outbox rows never became visible; not flipped")
}

// asyncCommit wraps the lock connection's runner so that the flips it runs
// commit without waiting for their WAL to reach disk: a flip no longer
// queues behind the writers' fsyncs, nor adds its own. A flip lost in a
// PostgreSQL crash only means its events are sent again (and dropped as
// duplicates), as long as no confirmed position depends on it: the slot can
// save a confirmed position to disk without flushing WAL, so
// the slot session holds every position back until WAL is flushed past the
// flip that made it confirmable.
func asyncCommit(run election.Runner) election.Runner {
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
