package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/cdcrelay/cdcrelay/bench/internal/load"
	"github.com/cdcrelay/cdcrelay/bench/internal/procfs"
	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

// runSustain searches for the highest offered rate, in 100-event
// transactions, at which lag stays flat: short probes bisect around the
// estimate (the drain rate under flat-out writers), then the best rate must
// hold for the full window, stepping down (at most three times) if it does
// not. A step goes below what the failed window delivered: 30 s windows
// fill the stream to its limit and see checkpoints that 6 s probes miss, so
// a fixed step of 15 % can fail three times in a row and report nothing.
func (s *session) runSustain(ctx context.Context, estimate float64) (report.SustainRun, error) {
	o := s.env.o
	run := report.SustainRun{System: s.sys.name(), Estimate: estimate}
	lo, hi := 0.0, math.Inf(1)
	rate := roundRate(0.9 * estimate)
	for range o.sustainProbes {
		p, err := s.probe(ctx, rate, o.sustainProbe)
		if err != nil {
			return run, err
		}
		run.Probes = append(run.Probes, p)
		if p.Pass {
			lo = rate
		} else {
			hi = rate
		}
		switch {
		case math.IsInf(hi, 1):
			// The estimate comes from a run where 8 flat-out writers
			// starved the consumer of CPU: it may be far too low.
			rate = roundRate(1.5 * lo)
		case lo == 0:
			rate = roundRate(0.7 * hi)
		default:
			rate = roundRate((lo + hi) / 2)
		}
	}
	if lo == 0 {
		lo = rate
	}
	for range 4 {
		if err := s.fresh(ctx); err != nil {
			return run, err
		}
		p, err := s.probe(ctx, lo, o.sustainWindow)
		if err != nil {
			return run, err
		}
		run.Probes = append(run.Probes, p)
		if p.Pass {
			run.Best = lo
			break
		}
		next := 0.85 * lo
		if p.AckedPerSec > 0 {
			next = min(next, 0.95*p.AckedPerSec)
		}
		// Down to a multiple of 500, so that rounding never undoes the step.
		next = max(500, math.Floor(next/500)*500)
		if next >= lo {
			break // at the floor: the same window again would say the same
		}
		lo = next
	}
	for _, p := range s.sys.replicas() {
		if rss, err := procfs.PeakRSS(p.PID()); err == nil {
			run.PeakRSS = max(run.PeakRSS, rss)
		}
	}
	return run, nil
}

// roundRate keeps rates on multiples of 500 events/s (5 transactions).
func roundRate(r float64) float64 { return max(500, math.Round(r/500)*500) }

// probe offers rate for window and judges the lag.
func (s *session) probe(ctx context.Context, rate float64, window time.Duration) (report.SustainProbe, error) {
	o := s.env.o
	p := report.SustainProbe{Rate: rate, Window: window}
	if err := s.env.waitQuiet(ctx); err != nil {
		return p, err
	}
	subject, tag := s.nextSubject()
	g, err := load.New(s.pool, load.Config{
		Writers: o.writers, Mode: load.Fixed, Rate: rate, Batch: 100, Window: window,
		Grace: 2 * time.Second, PayloadSize: o.payload, Subject: subject, Tag: tag,
	})
	if err != nil {
		return p, err
	}
	base, _, err := s.acked(ctx)
	if err != nil {
		return p, err
	}
	before, err := s.meter(ctx)
	if err != nil {
		return p, err
	}
	start := time.Now()
	lag := s.sampleLag(ctx, start, base, g.Written)
	wait := func() {}
	if window == o.sustainWindow {
		wait = s.profileLeader(ctx, fmt.Sprintf("sustain-%.0f", rate), window)
	}
	res, err := g.Run(ctx, start)
	wait()
	samples, lerr := lag.stop()
	if err != nil {
		return p, err
	}
	if lerr != nil {
		return p, lerr
	}
	after, err := s.meter(ctx)
	if err != nil {
		return p, err
	}
	p.Noise = s.env.noise(before, after)
	p.Cost = s.cost(before, after, res.Written)
	p.Pass, p.Why, p.LagEnd = judgeLag(samples, window, rate, time.Second)
	if res.Behind {
		p.Pass, p.Why = false, "writers fell behind the schedule"
	}
	for _, smp := range samples {
		if smp.at <= window && smp.at > 0 {
			p.AckedPerSec = float64(smp.acked) / smp.at.Seconds()
		}
	}
	s.env.logf("  sustain %-8s %7.0f/s for %v: %v (%s), acked %.0f/s, lag end %.2fs; CPU s/100k: PG %.2f (walsender %.2f) consumer %.2f NATS %.2f bench %.2f; others %.2f cores",
		s.sys.name(), rate, window, p.Pass, p.Why, p.AckedPerSec, p.LagEnd,
		p.Cost.PGCPU, p.Cost.WalsenderCPU, p.Cost.ConsumerCPU, p.Cost.NATSCPU, p.Cost.BenchCPU, p.Noise.ForeignCores)
	if _, _, err := s.settle(ctx, base, res.Written, 3*time.Minute); err != nil {
		return p, err
	}
	return p, nil
}
