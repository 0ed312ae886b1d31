package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cdcrelay/cdcrelay/bench/internal/load"
	"github.com/cdcrelay/cdcrelay/bench/internal/procfs"
	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

// runCatchup writes a backlog while the system is down and times how long a
// replica started on it takes to drain it. The system runs once first, so
// cdcrelay's slot exists and the backlog waits in WAL, as it does after a
// NATS outage (not in the slot-creation backfill).
func (s *session) runCatchup(ctx context.Context) (report.CatchupRun, error) {
	return s.drainBacklog(ctx, "catchup", s.env.o.backlog, 100)
}

// drainBacklog writes n events in batch-event transactions while the system
// is down and times how long a replica started on them takes to drain them;
// label names the run's profile.
func (s *session) drainBacklog(ctx context.Context, label string, n int64, batch int) (report.CatchupRun, error) {
	run := report.CatchupRun{System: s.sys.name(), Events: n}
	if len(s.sys.replicas()) == 0 {
		if _, err := s.sys.start(ctx, s, true); err != nil {
			return run, err
		}
	}
	if err := s.sys.stop(); err != nil {
		return run, err
	}
	if _, err := s.writeBacklog(ctx, n, batch); err != nil {
		return run, err
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return run, err
	}
	base, firstSeq := info.State.Msgs, info.State.LastSeq+1
	maxID, err := s.maxID(ctx)
	if err != nil {
		return run, err
	}
	before, err := s.meter(ctx)
	if err != nil {
		return run, err
	}
	t0 := time.Now()
	p, err := s.sys.start(ctx, s, false)
	if err != nil {
		return run, err
	}
	// The profile covers the drain if it takes at least 5 s.
	wait := s.profileLeader(ctx, label, 5*time.Second)
	defer wait()
	lastAck, err := s.waitAcked(ctx, base, n, 10*time.Minute)
	if err != nil {
		return run, err
	}
	flipped, err := s.waitFlipped(ctx, maxID, 10*time.Minute)
	if err != nil {
		return run, err
	}
	after, err := s.meter(ctx)
	if err != nil {
		return run, err
	}
	first, err := s.stream.GetMsg(ctx, firstSeq)
	if err != nil {
		return run, fmt.Errorf("read first drained message: %w", err)
	}
	run.Total = lastAck.Sub(t0).Seconds()
	run.Drain = lastAck.Sub(first.Time).Seconds()
	run.Flipped = flipped.Sub(t0).Seconds()
	if run.Drain > 0 {
		run.Rate = float64(n) / run.Drain
	}
	if rss, err := procfs.PeakRSS(p.PID()); err == nil {
		run.PeakRSS = rss
	}
	run.Cost = s.cost(before, after, n)
	run.Noise = s.env.noise(before, after)
	s.env.logf("  %s %-8s %d events in %d-event tx: %.2fs to the last ack (drain %.2fs, %.0f events/s), flipped at %.2fs, RSS %d MiB; CPU s/100k: relay %.2f NATS %.2f",
		label, s.sys.name(), n, batch, run.Total, run.Drain, run.Rate, run.Flipped, run.PeakRSS>>20, run.Cost.ConsumerCPU, run.Cost.NATSCPU)
	return run, nil
}

// writeBacklog writes n events in batch-event transactions on a subject of
// their own while no consumer runs, then checkpoints and waits for a quiet
// machine: the state a consumer started next finds after an outage.
func (s *session) writeBacklog(ctx context.Context, n int64, batch int) (string, error) {
	o := s.env.o
	subject, tag := s.nextSubject()
	g, err := load.New(s.pool, load.Config{
		Writers: o.writers, Mode: load.Closed, Batch: batch, Events: n,
		PayloadSize: o.payload, Subject: subject, Tag: tag,
	})
	if err != nil {
		return "", err
	}
	s.env.logf("  %s: writing a backlog of %d events", s.sys.name(), n)
	// How fast the backlog is written is not measured, and the poller's
	// NOTIFY trigger would make writing it take twice as long.
	if _, err := s.q.Exec(ctx, `ALTER TABLE bus.outbox DISABLE TRIGGER USER`); err != nil {
		return "", err
	}
	if _, err := g.Run(ctx, time.Now()); err != nil {
		return "", fmt.Errorf("write backlog: %w", err)
	}
	if _, err := s.q.Exec(ctx, `ALTER TABLE bus.outbox ENABLE TRIGGER USER`); err != nil {
		return "", err
	}
	// A checkpoint but no vacuum: after an outage the backlog's rows have
	// not been vacuumed either, and setting their hint bits is part of the
	// work of draining them.
	if err := s.env.checkpoint(ctx); err != nil {
		return "", err
	}
	return subject, s.env.waitQuiet(ctx)
}
