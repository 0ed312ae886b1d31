package report

import (
	"strings"
	"testing"
	"time"
)

// sustained adds the sustained searches of both systems to r: a short
// probe, a failed and a passing full window for each.
func sustained(r *Results, relay, poller float64) {
	win := 30 * time.Second
	for _, s := range []struct {
		sys       string
		best      float64
		nats, cpu float64
	}{{Relay, relay, 1.2, 0.6}, {Poller, poller, 1.0, 0.7}} {
		r.Sustain = append(r.Sustain, SustainRun{System: s.sys, Best: s.best, Probes: []SustainProbe{
			{Rate: s.best, Window: 6 * time.Second, Pass: true, Cost: Cost{NATSCPU: 0.1, BenchCPU: 0.1}},
			{Rate: 1.2 * s.best, Window: win, Why: "lag grew", Cost: Cost{NATSCPU: 0.1, BenchCPU: 0.1}},
			{Rate: s.best, Window: win, Pass: true, Cost: Cost{NATSCPU: s.nats, BenchCPU: s.cpu}},
		}})
	}
}

func TestSustainOutOfReach(t *testing.T) {
	r := sample()
	r.Machine.Cores = 2
	for round, pg := range []float64{0.7, 0.9} {
		r.Writer = append(r.Writer, WriterRun{System: None, Round: round + 1, Batch: 100, Cost: Cost{PGCPU: pg}})
	}
	sustained(r, 44500, 50000)
	md := r.Markdown("x.svg")
	// Per 100 k events: inserts 0.8, then the poller's window, the cheaper
	// (1.0 + 0.7 against 1.2 + 0.6): 2.5 s; at 100 k/s 2.5 cores of 2;
	// the ceiling 2 / 2.5 × 100 k.
	for _, want := range []string{"**out of this machine's reach**: sustained 44.5 k events/s", "inserts (0.80 s", "writers and consumer (0.70) and NATS (1.00; both from poller's passing window)", "need 2.50 of the machine's 2 cores", "cost nothing is 80.0 k events/s"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestSustainMissedWithinReach(t *testing.T) {
	r := sample()
	r.Machine.Cores = 2
	r.Writer = append(r.Writer, WriterRun{System: None, Round: 1, Batch: 100, Cost: Cost{PGCPU: 0.8}})
	sustained(r, 44500, 30000) // 60 k is under the 80 k ceiling
	md := r.Markdown("x.svg")
	if !strings.Contains(md, "**missed**: sustained 44.5 k events/s in 100-event transactions, the poller 30.0 k") || strings.Contains(md, "out of this machine's reach") {
		t.Errorf("a miss within the ceiling must read missed:\n%s", md)
	}
}

func TestSustainWithoutCeiling(t *testing.T) {
	r := sample() // no machine size and no 100-event no-consumer writers
	sustained(r, 44500, 50000)
	if md := r.Markdown("x.svg"); !strings.Contains(md, "**missed**: sustained 44.5 k") {
		t.Errorf("without the measurements for a ceiling a miss must read missed:\n%s", md)
	}
}
