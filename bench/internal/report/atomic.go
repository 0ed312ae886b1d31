package report

import (
	"fmt"
	"math"
	"strings"
)

// AtomicRun is cdcrelay, in its default mode (System Relay) or with
// --atomic-transactions (RelayAtomic), with writers committing transactions
// of Batch events: a latency run at a fixed rate and the drain of a backlog
// (issue 16: every transaction one atomic batch, all or nothing).
type AtomicRun struct {
	System  string     `json:"system"`
	Round   int        `json:"round"`
	Batch   int        `json:"batch"`
	Latency LatencyRun `json:"latency"`
	// Drain is zero when the drain did not run.
	Drain CatchupRun `json:"drain"`
}

// atomicRuns are the runs of one mode and transaction size; drained keeps
// only those whose drain ran.
func (r *Results) atomicRuns(system string, batch int, drained bool) []AtomicRun {
	var out []AtomicRun
	for _, a := range r.Atomic {
		if a.System == system && a.Batch == batch && (!drained || a.Drain.Rate > 0) {
			out = append(out, a)
		}
	}
	return out
}

// atomicSection is a table of its own: the two modes of cdcrelay side by
// side, per transaction size.
func (r *Results) atomicSection() string {
	if len(r.Atomic) == 0 {
		return ""
	}
	var b strings.Builder
	st := r.Settings
	fmt.Fprintf(&b, "\ncdcrelay with `--atomic-transactions` (each outbox transaction one JetStream atomic batch; the stream allows atomic batches) beside its default mode, "+
		"interleaved over %d rounds, each mode in sessions of its own; writers commit transactions of a fixed size. "+
		"Latency runs at %s events/s for %v; drains of a %s-event backlog written while the relay was down (first to last event stored). "+
		"CPU is the relay process's, then NATS's in parentheses; the last column compares medians.\n\n",
		st.Rounds, kilo(st.AtomicRate), st.LatencyWindow, kilo(float64(st.AtomicBacklog)))
	t := newTable("measurement", "default", "atomic", "atomic / default")
	modes := []string{Relay, RelayAtomic}
	ratio := func(f func(AtomicRun) float64, drained bool, batch int) string {
		def := median(pick(r.atomicRuns(Relay, batch, drained), f))
		at := median(pick(r.atomicRuns(RelayAtomic, batch, drained), f))
		if math.IsNaN(def) || math.IsNaN(at) || def == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", at/def)
	}
	cpu := func(runs []AtomicRun, c func(AtomicRun) Cost) string {
		if len(runs) == 0 {
			return "–"
		}
		return fmt.Sprintf("%s (%s)", span(pick(runs, func(a AtomicRun) float64 { return c(a).ConsumerCPU }), num),
			span(pick(runs, func(a AtomicRun) float64 { return c(a).NATSCPU }), num))
	}
	for _, batch := range st.AtomicBatches {
		rate := func(a AtomicRun) float64 { return a.Drain.Rate }
		row := []string{fmt.Sprintf("%d-event tx: drain rate, events/s", batch)}
		for _, m := range modes {
			row = append(row, span(pick(r.atomicRuns(m, batch, true), rate), kilo))
		}
		t.row(append(row, ratio(rate, true, batch))...)
		drainCost := func(a AtomicRun) Cost { return a.Drain.Cost }
		row = []string{"… relay (NATS) CPU s / 100k events, drain"}
		for _, m := range modes {
			row = append(row, cpu(r.atomicRuns(m, batch, true), drainCost))
		}
		t.row(append(row, ratio(func(a AtomicRun) float64 { return a.Drain.Cost.ConsumerCPU }, true, batch))...)
		row = []string{fmt.Sprintf("%d-event tx at %s events/s: commit → JetStream ack, ms (p99 compared)", batch, kilo(st.AtomicRate))}
		for _, m := range modes {
			var ls []LatencyRun
			for _, a := range r.atomicRuns(m, batch, false) {
				ls = append(ls, a.Latency)
			}
			row = append(row, latencyCell(ls, func(l LatencyRun) Percentiles { return l.CommitAck }))
		}
		t.row(append(row, ratio(func(a AtomicRun) float64 { return a.Latency.CommitAck.P99 }, false, batch))...)
		latCost := func(a AtomicRun) Cost { return a.Latency.Cost }
		row = []string{fmt.Sprintf("… relay (NATS) CPU s / 100k events at %s events/s", kilo(st.AtomicRate))}
		for _, m := range modes {
			row = append(row, cpu(r.atomicRuns(m, batch, false), latCost))
		}
		t.row(append(row, ratio(func(a AtomicRun) float64 { return a.Latency.Cost.ConsumerCPU }, false, batch))...)
	}
	b.WriteString(t.String())
	return b.String()
}
