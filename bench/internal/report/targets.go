package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// targets checks cdcrelay against the goals of the benchmark's issue, each
// on its worst round, and says which were met.
func (r *Results) targets() string {
	var lines []string
	mark := func(mark, format string, args ...any) {
		lines = append(lines, fmt.Sprintf("- **%s**: %s", mark, fmt.Sprintf(format, args...)))
	}
	check := func(ok bool, format string, args ...any) {
		if ok {
			mark("met", format, args...)
		} else {
			mark("missed", format, args...)
		}
	}
	if relay, none := r.writers(Relay, 1), r.writers(None, 1); len(relay) > 0 && len(none) > 0 {
		ceiling := median(pick(none, func(w WriterRun) float64 { return w.TxPerSec }))
		worst := slices.Min(pick(relay, func(w WriterRun) float64 { return w.TxPerSec }))
		flat := true
		for _, w := range relay {
			flat = flat && w.LagFlat
		}
		check(worst >= 0.7*ceiling && flat, "single-row writers with cdcrelay at %.0f %% of the no-consumer ceiling (worst round), lag flat in every round: %v (target ≥ 70 %%, flat)", 100*worst/ceiling, flat)
	}
	r.sustainTarget(check, mark)
	for _, t := range []struct {
		rate, p99 float64
	}{{1000, 3}, {10000, 20}} {
		if p99s := r.latencies(Relay, t.rate, func(p Percentiles) float64 { return p.P99 }); len(p99s) > 0 {
			check(slices.Max(p99s) <= t.p99, "commit → ack p99 %s ms at %s events/s (worst round; target ≤ %g ms)", ms(slices.Max(p99s)), kilo(t.rate), t.p99)
		}
	}
	r.belowPollerTarget(check)
	if cpu := r.latencyCPU(Relay, 1000); len(cpu) > 0 {
		check(slices.Max(cpu) <= 50, "relay CPU %.0f µs per event at 1.0 k events/s (worst round; target ≤ 50 µs)", slices.Max(cpu))
	}
	relayPG := median(pick(r.writers(Relay, 1), func(w WriterRun) float64 { return w.Cost.PGCPU }))
	pollerPG := median(pick(r.writers(Poller, 1), func(w WriterRun) float64 { return w.Cost.PGCPU }))
	nonePG := median(pick(r.writers(None, 1), func(w WriterRun) float64 { return w.Cost.PGCPU }))
	if !math.IsNaN(relayPG) && !math.IsNaN(pollerPG) {
		if math.IsNaN(nonePG) {
			check(relayPG <= pollerPG/3, "Postgres CPU per single-row event %.2f of the poller's (medians, writers' inserts included; target ≤ 0.33)", relayPG/pollerPG)
		} else {
			added := (relayPG - nonePG) / (pollerPG - nonePG)
			check(added <= 1.0/3, "Postgres CPU cdcrelay adds per single-row event above no consumer %.2f of what the poller adds (medians; writers' inserts included: %.2f; target ≤ 0.33)", added, relayPG/pollerPG)
		}
	}
	r.sharedTarget(check)
	var rss []float64
	for _, s := range r.Sustain {
		if s.System == Relay && s.PeakRSS > 0 {
			rss = append(rss, float64(s.PeakRSS))
		}
	}
	for _, c := range r.Catchup {
		if c.System == Relay {
			if c.PeakRSS > 0 {
				rss = append(rss, float64(c.PeakRSS))
			}
			if c.Events == 1_000_000 {
				check(c.Total <= 10, "1,000,000-event backlog in JetStream %s after start (target ≤ 10 s)", secs(c.Total))
			}
		}
	}
	if len(rss) > 0 {
		check(slices.Max(rss) <= 100<<20, "relay peak RSS %s (target ≤ 100 MiB)", mib(slices.Max(rss)))
	}
	if len(lines) == 0 {
		return ""
	}
	return "\ncdcrelay against its targets:\n\n" + strings.Join(lines, "\n") + "\n"
}

// sustainTarget: cdcrelay's best flat-lag rate at least twice the poller's.
// A miss is marked out of reach when twice the poller's rate is more than
// the machine's ceiling (see ceiling): no drain could pass there.
func (r *Results) sustainTarget(check func(bool, string, ...any), mark func(string, string, ...any)) {
	best := map[string]float64{}
	for _, s := range r.Sustain {
		best[s.System] = s.Best
	}
	relay, ok := best[Relay]
	if !ok {
		return
	}
	poller, ok := best[Poller]
	if !ok || poller == 0 {
		check(relay >= 50000, "sustained %s events/s in 100-event transactions (no poller rate to compare; target ≥ 50 k)", kilo(relay))
		return
	}
	what := fmt.Sprintf("sustained %s events/s in 100-event transactions, the poller %s (target ≥ 2× the poller's)", kilo(relay), kilo(poller))
	c, ok := r.machineCeiling()
	if relay >= 2*poller || !ok || 2*poller <= c.rate() {
		check(relay >= 2*poller, "%s", what)
		return
	}
	mark("out of this machine's reach", "%s; at %s events/s the writers' inserts (%.2f s of CPU per 100 k events with no consumer), the bench's writers and consumer (%.2f) and NATS (%.2f; both from %s's passing window) alone need %.2f of the machine's %.0f cores, so no drain could hold it here: the ceiling for one that cost nothing is %s events/s",
		what, kilo(2*poller), c.inserts, c.bench, c.nats, c.from, 2*poller*c.shared()/100_000, c.cores, kilo(c.rate()))
}

// belowPollerTarget: commit → ack p99 and p99.9 below the poller's at every
// offered rate, worst round against best.
func (r *Results) belowPollerTarget(check func(bool, string, ...any)) {
	var rates []float64
	for _, l := range r.Latency {
		if l.System == Relay && !slices.Contains(rates, l.Rate) {
			rates = append(rates, l.Rate)
		}
	}
	slices.Sort(rates)
	for _, rate := range rates {
		for _, q := range []struct {
			name string
			get  func(Percentiles) float64
		}{{"p99", func(p Percentiles) float64 { return p.P99 }}, {"p99.9", func(p Percentiles) float64 { return p.P999 }}} {
			relay, poller := r.latencies(Relay, rate, q.get), r.latencies(Poller, rate, q.get)
			if len(relay) == 0 || len(poller) == 0 {
				continue
			}
			check(slices.Max(relay) < slices.Min(poller), "commit → ack %s at %s events/s %s ms, the poller %s ms (worst round against its best; target below the poller's)",
				q.name, kilo(rate), ms(slices.Max(relay)), ms(slices.Min(poller)))
		}
	}
}

// latencies are one system's commit → ack percentiles at rate, a value per
// round (the default latency runs, not the fixed-size ones).
func (r *Results) latencies(system string, rate float64, get func(Percentiles) float64) []float64 {
	return pick(r.latencyRuns(system, rate), func(l LatencyRun) float64 { return get(l.CommitAck) })
}
