package report

import (
	"fmt"
	"slices"
)

// SharedRun is the same backlog drained alone and beside a foreign
// publisher writing into the same stream (issue 11: the bus has one stream
// for every producer).
type SharedRun struct {
	System      string  `json:"system"`
	Events      int64   `json:"events"`
	ForeignRate float64 `json:"foreign_rate"`
	// Drains are every drain, alone (ForeignRate 0) and shared, in order.
	Drains []SharedDrain `json:"drains"`
	// Alone and Shared are the median drain rates (events/s); Share is
	// Shared/Alone.
	Alone  float64 `json:"alone_events_per_s"`
	Shared float64 `json:"shared_events_per_s"`
	Share  float64 `json:"share"`
}

// SharedDrain is one drain of the backlog.
type SharedDrain struct {
	Round       int     `json:"round"`
	ForeignRate float64 `json:"foreign_rate"`
	// ForeignSent is the rate the foreign publisher reached (messages/s)
	// from the consumer's start to the last event stored.
	ForeignSent float64 `json:"foreign_sent_per_s"`
	// Total runs from starting the consumer to the last event stored;
	// Drain from the first event stored to the last.
	Total float64 `json:"total_s"`
	Drain float64 `json:"drain_s"`
	Rate  float64 `json:"events_per_s"`
}

// Summarise sets Alone, Shared and Share from the drains.
func (s *SharedRun) Summarise() {
	var alone, shared []float64
	for _, d := range s.Drains {
		if d.ForeignRate > 0 {
			shared = append(shared, d.Rate)
		} else {
			alone = append(alone, d.Rate)
		}
	}
	// JSON has no NaN: a side that did not run is 0.
	s.Alone, s.Shared, s.Share = 0, 0, 0
	if len(alone) > 0 {
		s.Alone = median(alone)
	}
	if len(shared) > 0 {
		s.Shared = median(shared)
	}
	if s.Alone > 0 {
		s.Share = s.Shared / s.Alone
	}
}

func (r *Results) sharedRows(t *table) {
	if len(r.Shared) == 0 {
		return
	}
	first := r.Shared[0]
	row := []string{fmt.Sprintf("Shared stream: drain of a %s-event backlog with a foreign publisher at %s msg/s, share of the drain rate alone (median rates)",
		kilo(float64(first.Events)), kilo(first.ForeignRate)), "–"}
	for _, sys := range []string{Relay, Poller} {
		c := "–"
		for _, s := range r.Shared {
			if s.System == sys && s.Alone > 0 {
				c = fmt.Sprintf("%.0f %% (%s/s of %s/s)", 100*s.Share, kilo(s.Shared), kilo(s.Alone))
			}
		}
		row = append(row, c)
	}
	t.row(append(row, "≥ 90 %")...)
}

// sharedTarget checks cdcrelay's shared-stream share on its worst pairing
// of drains: the slowest shared one against the median alone.
func (r *Results) sharedTarget(check func(ok bool, format string, args ...any)) {
	for _, s := range r.Shared {
		if s.System != Relay || s.Alone <= 0 {
			continue
		}
		var shared []float64
		for _, d := range s.Drains {
			if d.ForeignRate > 0 {
				shared = append(shared, d.Rate)
			}
		}
		if len(shared) == 0 {
			continue
		}
		worst := slices.Min(shared) / s.Alone
		check(worst >= 0.9, "drain beside a foreign publisher at %s msg/s in the same stream at %.0f %% of the drain alone (slowest shared drain against the median alone; target ≥ 90 %%)",
			kilo(s.ForeignRate), 100*worst)
	}
}
