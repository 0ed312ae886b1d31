package report

import (
	"math"
	"slices"
)

// ceiling is how many events per second this machine's cores could carry
// through the sustained test, from what the run measured each part cost.
// Everything runs on the same cores, so a rate needs the sum of every
// process's CPU per event, whatever the drain does.
type ceiling struct {
	cores float64
	// Per 100 k events, CPU seconds: the writers' inserts with nobody
	// draining (median of the no-consumer 100-event writer runs); the
	// bench's writers and consumer and NATS, from a drain's passing window
	// (the cheaper of the two systems').
	inserts, bench, nats float64
	from                 string // the system whose window gave bench and nats
}

// shared is what any drain leaves to others per 100 k events.
func (c ceiling) shared() float64 { return c.inserts + c.bench + c.nats }

// rate is the events per second at which the shared work alone fills
// every core: the most that any drain, even one that cost nothing, could
// sustain on this machine.
func (c ceiling) rate() float64 { return c.cores * 100_000 / c.shared() }

// machineCeiling returns the ceiling, or false when the run lacks the
// measurements (no machine size, no no-consumer 100-event writers, no
// passing sustained window).
func (r *Results) machineCeiling() (ceiling, bool) {
	c := ceiling{cores: float64(r.Machine.Cores)}
	c.inserts = median(pick(r.writers(None, 100), func(w WriterRun) float64 { return w.Cost.PGCPU }))
	if c.cores <= 0 || math.IsNaN(c.inserts) || c.inserts <= 0 {
		return c, false
	}
	best := math.Inf(1)
	for _, s := range r.Sustain {
		p, ok := s.passing()
		if !ok || p.Cost.NATSCPU <= 0 {
			continue
		}
		if sum := p.Cost.BenchCPU + p.Cost.NATSCPU; sum < best {
			best, c.bench, c.nats, c.from = sum, p.Cost.BenchCPU, p.Cost.NATSCPU, s.System
		}
	}
	return c, !math.IsInf(best, 1)
}

// passing is the window that set Best: the last probe at that rate that
// passed (the search's full window comes after its short probes).
func (s SustainRun) passing() (SustainProbe, bool) {
	if s.Best <= 0 {
		return SustainProbe{}, false
	}
	for _, p := range slices.Backward(s.Probes) {
		if p.Pass && p.Rate == s.Best {
			return p, true
		}
	}
	return SustainProbe{}, false
}
