package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cdcrelay/cdcrelay/bench/internal/load"
	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

// runFailover runs two replicas under open-loop load and SIGKILLs the
// leader several times, restarting the killed one as the new standby once
// the old standby has taken over. The
// gap of a kill is from the SIGKILL to the first receipt of an event that
// was begun after it: such an event cannot have been published by the dead
// leader.
func (s *session) runFailover(ctx context.Context) (report.FailoverRun, error) {
	o := s.env.o
	run := report.FailoverRun{System: s.sys.name(), Rate: o.failoverRate}
	if len(s.sys.replicas()) == 0 {
		if _, err := s.sys.start(ctx, s, true); err != nil {
			return run, err
		}
	}
	for len(s.sys.replicas()) < 2 {
		if _, err := s.sys.start(ctx, s, false); err != nil {
			return run, err
		}
	}
	if err := s.env.waitQuiet(ctx); err != nil {
		return run, err
	}
	const perKill = 9 * time.Second
	subject, tag := s.nextSubject()
	g, err := load.New(s.pool, load.Config{
		Writers: o.writers, Mode: load.Adaptive, Rate: o.failoverRate, Batch: 100,
		Window: time.Duration(o.failovers)*perKill + 5*time.Second, Grace: time.Second,
		PayloadSize: o.payload, Subject: subject, Tag: tag, Record: true,
	})
	if err != nil {
		return run, err
	}
	r, err := s.receive(ctx, subject, tag, g.Scheduled(), false)
	if err != nil {
		return run, err
	}
	defer r.stop()

	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct {
		res load.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := g.Run(gctx, time.Now())
		done <- outcome{res, err}
	}()
	type kill struct {
		at    int64
		after int64
	}
	var kills []kill
	var ferr error
	if ferr = sleep(ctx, 2*time.Second); ferr == nil {
		for range o.failovers {
			leader, err := s.sys.leader(ctx, s)
			if err != nil {
				ferr = err
				break
			}
			k := kill{after: g.Claimed(), at: time.Now().UnixNano()}
			leader.Kill()
			s.sys.forget(leader)
			kills = append(kills, k)
			if err := r.waitSeq(ctx, k.after, 60*time.Second); err != nil {
				ferr = fmt.Errorf("after killing %s: %w", leader.Name, err)
				break
			}
			// Only now the killed replica comes back, as the standby: a
			// fresh process tries the lock at once and would win the race
			// against the standby's retry timer, which is not what a
			// failover looks like.
			if _, err := s.sys.start(ctx, s, false); err != nil {
				ferr = err
				break
			}
			// A random pause: a fixed one would kill in step with the
			// standby's retry timer and always hit the same phase of it.
			if ferr = sleep(ctx, 2*time.Second+rand.N(1500*time.Millisecond)); ferr != nil {
				break
			}
		}
	}
	cancel()
	out := <-done
	if ferr != nil {
		return run, ferr
	}
	if out.err != nil {
		return run, out.err
	}
	res := out.res
	if run.Lost, err = r.waitAll(ctx, res.Commit, time.Minute); err != nil {
		return run, err
	}
	run.Duplicates = r.dups.Load()
	for _, k := range kills {
		first := int64(0)
		for i := k.after; i < res.Scheduled; i++ {
			if t := r.recvAt(i); t != 0 && (first == 0 || t < first) {
				first = t
			}
		}
		if first != 0 {
			run.Gaps = append(run.Gaps, float64(first-k.at)/1e9)
		}
	}
	if len(run.Gaps) > 0 {
		sorted := slices.Clone(run.Gaps)
		slices.Sort(sorted)
		run.Median = sorted[len(sorted)/2]
	}
	s.env.logf("  failover %-8s gaps %v s, median %.2fs, lost %d, duplicates %d", s.sys.name(), fmtGaps(run.Gaps), run.Median, run.Lost, run.Duplicates)
	return run, nil
}

func fmtGaps(g []float64) string {
	out := make([]byte, 0, 8*len(g))
	for i, v := range g {
		if i > 0 {
			out = append(out, ' ')
		}
		out = fmt.Appendf(out, "%.2f", v)
	}
	return string(out)
}
