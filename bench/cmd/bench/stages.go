package main

import (
	"context"

	"github.com/cdcrelay/cdcrelay/bench/internal/hist"
	"github.com/cdcrelay/cdcrelay/bench/internal/load"
	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

// runStages runs cdcrelay's latency runs again, with --diagnostic-headers,
// one per stage rate, for the per-stage breakdown (issue 12, item 1).
func (s *session) runStages(ctx context.Context) ([]report.LatencyRun, error) {
	var out []report.LatencyRun
	for _, rate := range s.env.o.stageRates {
		l, err := s.runLatency(ctx, 1, rate, 0, true)
		if err != nil {
			return out, err
		}
		out = append(out, l)
		for _, st := range l.Stages {
			s.env.logf("  stage %-8s %6.0f/s %-40s p50 %.2f p99 %.2f max %.2f ms", s.sys.name(), rate, st.Name, st.P50, st.P99, st.Max)
		}
	}
	return out, nil
}

// stages splits each event's trip at the times the relay's diagnostic
// headers, JetStream and the consumer report. Only events all of whose
// times are known count.
func stages(res load.Result, r *receiver) []report.Stage {
	names := []string{
		report.StageCommitSend, report.StageSendRecv, report.StageRecvPublish, report.StagePublishStored, report.StageStoredRecv,
		report.StageCommitReturn, report.StageCommitStored,
	}
	hs := make([]*hist.Histogram, len(names))
	for i := range hs {
		hs[i] = hist.New()
	}
	tr := r.trace
	for i := range res.Scheduled {
		seq := int64(i)
		commit, sent, relayRecv, published := tr.at(seq)
		stored, recv := r.ackAt(seq), r.recvAt(seq)
		if res.Commit[i] == 0 || commit == 0 || sent == 0 || relayRecv == 0 || published == 0 || stored == 0 || recv == 0 {
			continue
		}
		for k, d := range []int64{sent - commit, relayRecv - sent, published - relayRecv, stored - published, recv - stored, res.Commit[i] - commit, stored - commit} {
			// Clocks are one machine's; a negative span is rounding
			// (PostgreSQL keeps microseconds) and counts as zero.
			hs[k].Record(max(d, 0))
		}
	}
	out := make([]report.Stage, len(names))
	for k, name := range names {
		out[k] = report.Stage{Name: name, Percentiles: percentiles(hs[k])}
	}
	return out
}
