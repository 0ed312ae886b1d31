package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cdcrelay/cdcrelay/bench/internal/load"
	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

// runWriter measures writers going flat out with batch events per
// transaction while the session's system consumes (or nothing does).
func (s *session) runWriter(ctx context.Context, round, batch int) (report.WriterRun, error) {
	o := s.env.o
	run := report.WriterRun{System: s.sys.name(), Round: round, Batch: batch}
	if err := s.env.waitQuiet(ctx); err != nil {
		return run, err
	}
	if err := s.fresh(ctx); err != nil {
		return run, err
	}
	subject, tag := s.nextSubject()
	g, err := load.New(s.pool, load.Config{
		Writers: o.writers, Mode: load.Closed, Batch: batch, Window: o.writerDur,
		PayloadSize: o.payload, Subject: subject, Tag: tag,
	})
	if err != nil {
		return run, err
	}
	base, _, err := s.acked(ctx)
	if err != nil {
		return run, err
	}
	before, err := s.meter(ctx)
	if err != nil {
		return run, err
	}
	start := time.Now()
	var lag *lagSampler
	if s.sys.consumes() {
		lag = s.sampleLag(ctx, start, base, g.Written)
	}
	res, err := g.Run(ctx, start)
	if err != nil {
		if lag != nil {
			_, _ = lag.stop()
		}
		return run, fmt.Errorf("writers: %w", err)
	}
	elapsed := res.End.Sub(res.Start).Seconds()
	run.TxPerSec = float64(res.Txs) / elapsed
	run.EventsPerSec = float64(res.Written) / elapsed
	if lag != nil {
		samples, err := lag.stop()
		if err != nil {
			return run, err
		}
		var why string
		run.LagFlat, why, run.LagEnd = judgeLag(samples, o.writerDur, run.EventsPerSec, 0)
		for _, smp := range samples {
			if smp.at > 0 && smp.at <= o.writerDur {
				run.AckedPerSec = float64(smp.acked) / smp.at.Seconds()
			}
		}
		if !run.LagFlat {
			s.env.logf("  %s: lag not flat: %s", s.sys.name(), why)
		}
	}
	lastAck, _, err := s.settle(ctx, base, res.Written, 3*time.Minute)
	if err != nil {
		return run, err
	}
	if s.sys.consumes() {
		run.Drain = max(lastAck.Sub(res.End).Seconds(), 0)
	}
	after, err := s.meter(ctx)
	if err != nil {
		return run, err
	}
	run.Cost = s.cost(before, after, res.Written)
	run.Noise = s.env.noise(before, after)
	s.env.logf("  writer %-8s batch %3d: %8.0f tx/s %8.0f events/s, acked %8.0f/s, lag end %.2fs, drain %.2fs, PG CPU %.1fs/100k",
		s.sys.name(), batch, run.TxPerSec, run.EventsPerSec, run.AckedPerSec, run.LagEnd, run.Drain, run.Cost.PGCPU)
	return run, nil
}
