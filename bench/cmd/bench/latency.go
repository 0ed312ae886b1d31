package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cdcrelay/cdcrelay/bench/internal/hist"
	"github.com/cdcrelay/cdcrelay/bench/internal/load"
	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

// runLatency offers rate events/s open loop and measures each event's trip;
// traced also times its stages (cdcrelay with --diagnostic-headers only: see
// relayTrace). With batch 0 a free
// writer commits every event due, up to 100, in one transaction; with batch
// > 0 transactions of batch events are due on the schedule (load.Fixed).
func (s *session) runLatency(ctx context.Context, round int, rate float64, batch int, traced bool) (report.LatencyRun, error) {
	o := s.env.o
	run := report.LatencyRun{System: s.sys.name(), Round: round, Rate: rate}
	mode, label := load.Adaptive, fmt.Sprintf("latency-%.0f-r%d", rate, round)
	if batch > 0 {
		mode, label = load.Fixed, fmt.Sprintf("%s-tx%d", label, batch)
	} else {
		batch = 100
	}
	if err := s.env.waitQuiet(ctx); err != nil {
		return run, err
	}
	if err := s.fresh(ctx); err != nil {
		return run, err
	}
	subject, tag := s.nextSubject()
	g, err := load.New(s.pool, load.Config{
		Writers: o.writers, Mode: mode, Rate: rate, Batch: batch, Window: o.latencyDur,
		Grace: 5 * time.Second, PayloadSize: o.payload, Subject: subject, Tag: tag, Record: true,
	})
	if err != nil {
		return run, err
	}
	r, err := s.receive(ctx, subject, tag, g.Scheduled(), traced)
	if err != nil {
		return run, err
	}
	defer r.stop()
	base, _, err := s.acked(ctx)
	if err != nil {
		return run, err
	}
	before, err := s.meter(ctx)
	if err != nil {
		return run, err
	}
	wait := s.profileLeader(ctx, label, o.latencyDur)
	res, err := g.Run(ctx, time.Now().Add(10*time.Millisecond))
	wait()
	if err != nil {
		return run, err
	}
	end := time.Now()
	if missing, err := r.waitAll(ctx, res.Commit, time.Minute); err != nil {
		return run, err
	} else if missing > 0 {
		s.env.logf("  %s at %.0f/s: %d events written but not received within a minute", s.sys.name(), rate, missing)
	}
	if _, _, err := s.settle(ctx, base, res.Written, time.Minute); err != nil {
		return run, err
	}
	after, err := s.meter(ctx)
	if err != nil {
		return run, err
	}
	if traced {
		run.Stages = stages(res, r)
	}
	run.Cost = s.cost(before, after, res.Written)
	run.Noise = s.env.noise(before, after)
	run.Behind = res.Behind
	if res.Txs > 0 {
		run.EventsPerTx = float64(res.Written) / float64(res.Txs)
	}

	commitAck, commitRecv, intendedRecv := hist.New(), hist.New(), hist.New()
	for i := range res.Scheduled {
		intended := g.Intended(i)
		if res.Commit[i] == 0 {
			// Never written: due, but the writers could not get to it.
			// At least this late, and counted, not dropped.
			intendedRecv.Record(end.UnixNano() - intended)
			continue
		}
		recv := r.recvAt(i)
		if recv == 0 {
			run.Lost++
			continue
		}
		commitAck.Record(r.ackAt(i) - res.Commit[i])
		commitRecv.Record(recv - res.Commit[i])
		intendedRecv.Record(recv - intended)
	}
	run.CommitAck, run.CommitRecv, run.IntendedRecv = percentiles(commitAck), percentiles(commitRecv), percentiles(intendedRecv)
	if o.profileDir != "" {
		if err := writeTimes(filepath.Join(o.profileDir, fmt.Sprintf("%s-%s-%s.csv", s.db, s.sys.name(), label)), g, res, r); err != nil {
			s.env.logf("  %v", err)
		}
	}
	s.env.logf("  latency %-8s %6.0f/s: commit→ack p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms; intended→recv p99 %.2f ms; %.1f events/tx; consumer CPU %.2f s/100k%s",
		s.sys.name(), rate, run.CommitAck.P50, run.CommitAck.P99, run.CommitAck.P999, run.CommitAck.Max,
		run.IntendedRecv.P99, run.EventsPerTx, run.Cost.ConsumerCPU, map[bool]string{true: ", BEHIND", false: ""}[run.Behind])
	return run, nil
}

// writeTimes dumps every event's times (Unix ns) for a look at latency
// over the run, next to the profiles; in a stage run also the relay's
// stage times: its transaction's commit time, when its walsender sent it,
// when the relay received it and handed it to NATS.
func writeTimes(path string, g *load.Generator, res load.Result, r *receiver) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "seq,intended,begin,commit,ack,recv,pg_commit,walsender_send,relay_recv,relay_publish")
	for i := range res.Scheduled {
		var pgCommit, sent, relayRecv, published int64
		if tr := r.trace; tr != nil {
			pgCommit, sent, relayRecv, published = tr.at(int64(i))
		}
		fmt.Fprintf(w, "%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n", i, g.Intended(i), res.Begin[i], res.Commit[i], r.ackAt(i), r.recvAt(i),
			pgCommit, sent, relayRecv, published)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func percentiles(h *hist.Histogram) report.Percentiles {
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	return report.Percentiles{
		N: h.Count(), P50: ms(h.Quantile(0.5)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Max()),
	}
}
