package main

import (
	"context"
	"fmt"

	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

// runAtomic measures cdcrelay with --atomic-transactions beside its default
// mode (issue 16): the two modes interleaved round by round, who goes first
// rotating, each in a session of its own on the same stream configuration
// but for allow_atomic.
func (e *env) runAtomic(ctx context.Context, res *report.Results, systems []system) {
	o := e.o
	if !o.only["atomic"] {
		return
	}
	var modes []system
	for _, sys := range systems {
		if r, ok := sys.(*relaySystem); ok {
			modes = []system{r, r.atomicTwin()}
		}
	}
	if len(modes) == 0 {
		return
	}
	e.interleave(ctx, res, "atomic ", modes, func(s *session, round int) error {
		runs, err := s.runAtomic(ctx, round)
		res.Atomic = append(res.Atomic, runs...)
		return err
	})
}

// runAtomic runs, for each transaction size, a latency run at the atomic
// rate and the drain of a backlog: the latency runs first, while the
// replica started by the session streams, as the drains restart it. A run
// whose drain failed is returned without one, one whose latency run failed
// not at all.
func (s *session) runAtomic(ctx context.Context, round int) ([]report.AtomicRun, error) {
	o := s.env.o
	runs := make([]report.AtomicRun, len(o.atomicBatches))
	for i, batch := range o.atomicBatches {
		l, err := s.runLatency(ctx, round, o.atomicRate, batch, false)
		if err != nil {
			return runs[:i], fmt.Errorf("latency in %d-event tx: %w", batch, err)
		}
		runs[i] = report.AtomicRun{System: s.sys.name(), Round: round, Batch: batch, Latency: l}
	}
	for i, batch := range o.atomicBatches {
		d, err := s.drainBacklog(ctx, fmt.Sprintf("drain-tx%d", batch), o.atomicBacklog, batch)
		if err != nil {
			return runs, fmt.Errorf("drain of %d-event tx: %w", batch, err)
		}
		runs[i].Drain = d
	}
	if needsAtomic(s.sys) {
		return runs, s.checkAtomic(ctx)
	}
	return runs, nil
}

// checkAtomic reads the newest message in the stream, the last drained
// event: a relay that publishes atomically leaves the batch's id on it, so
// a flag it ignored cannot pass for a measurement of atomic mode.
func (s *session) checkAtomic(ctx context.Context) error {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream info: %w", err)
	}
	m, err := s.stream.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		return fmt.Errorf("read the last message: %w", err)
	}
	if m.Header.Get("Nats-Batch-Id") == "" {
		return fmt.Errorf("%s: message %d was not published in an atomic batch (no Nats-Batch-Id)", s.sys.name(), m.Sequence)
	}
	return nil
}
