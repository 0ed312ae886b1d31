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
	check := func(ok bool, format string, args ...any) {
		mark := "missed"
		if ok {
			mark = "met"
		}
		lines = append(lines, fmt.Sprintf("- **%s**: %s", mark, fmt.Sprintf(format, args...)))
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
	for _, s := range r.Sustain {
		if s.System == Relay {
			check(s.Best >= 50000, "sustained %s events/s in 100-event transactions (target ≥ 50 k)", kilo(s.Best))
		}
	}
	for _, t := range []struct {
		rate, p99 float64
	}{{1000, 3}, {10000, 20}} {
		var p99s []float64
		for _, l := range r.Latency {
			if l.System == Relay && l.Rate == t.rate {
				p99s = append(p99s, l.CommitAck.P99)
			}
		}
		if len(p99s) > 0 {
			check(slices.Max(p99s) <= t.p99, "commit → ack p99 %s ms at %s events/s (worst round; target ≤ %g ms)", ms(slices.Max(p99s)), kilo(t.rate), t.p99)
		}
	}
	relayPG := median(pick(r.writers(Relay, 1), func(w WriterRun) float64 { return w.Cost.PGCPU }))
	pollerPG := median(pick(r.writers(Poller, 1), func(w WriterRun) float64 { return w.Cost.PGCPU }))
	nonePG := median(pick(r.writers(None, 1), func(w WriterRun) float64 { return w.Cost.PGCPU }))
	if !math.IsNaN(relayPG) && !math.IsNaN(pollerPG) {
		note := ""
		if !math.IsNaN(nonePG) {
			note = fmt.Sprintf("; counting only what each adds above no consumer: %.2f", (relayPG-nonePG)/(pollerPG-nonePG))
		}
		check(relayPG <= pollerPG/3, "Postgres CPU per single-row event %.2f of the poller's (medians, writers' inserts included%s; target ≤ 0.33)", relayPG/pollerPG, note)
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
