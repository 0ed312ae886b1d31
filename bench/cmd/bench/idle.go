package main

import (
	"context"
	"time"

	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

// runIdle measures what the system burns with nothing to publish: polling,
// keepalives, heartbeats, busy loops.
func (s *session) runIdle(ctx context.Context, round int, d time.Duration) (report.IdleRun, error) {
	run := report.IdleRun{System: s.sys.name(), Round: round}
	before, err := s.meter(ctx)
	if err != nil {
		return run, err
	}
	if err := sleep(ctx, d); err != nil {
		return run, err
	}
	after, err := s.meter(ctx)
	if err != nil {
		return run, err
	}
	// cost is per 100k events; one "event" per second of wall time turns
	// it into cores.
	wall := after.at.Sub(before.at).Seconds()
	c := s.cost(before, after, 100_000)
	run.PG, run.Walsender, run.Consumer, run.NATS = c.PGCPU/wall, c.WalsenderCPU/wall, c.ConsumerCPU/wall, c.NATSCPU/wall
	s.env.logf("  idle %-8s cores: PG %.3f (walsender %.3f) consumer %.3f NATS %.3f", s.sys.name(), run.PG, run.Walsender, run.Consumer, run.NATS)
	return run, nil
}
