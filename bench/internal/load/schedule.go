package load

import (
	"math"
	"time"
)

// Mode is how a generator decides when to write.
type Mode int

const (
	// Closed writes fixed-size transactions as fast as the writers can: the
	// writer-cost ceiling. Nothing is scheduled, so there is no latency to
	// speak of.
	Closed Mode = iota
	// Fixed schedules fixed-size transactions at the offered rate by the
	// wall clock: transaction k is due at k·Batch/Rate, whatever happened to
	// transaction k-1.
	Fixed
	// Adaptive schedules single events at the offered rate; a free writer
	// commits every event already due (up to Batch) in one transaction, as a
	// service that groups its writes would. At low rates that is one event
	// per transaction.
	Adaptive
)

func (m Mode) String() string {
	switch m {
	case Closed:
		return "closed"
	case Fixed:
		return "fixed"
	case Adaptive:
		return "adaptive"
	}
	return "unknown"
}

// schedule hands out units of work (a first event and a count) to writers.
// It is a pure function of the time it is asked at, so it can be tested
// without a clock; the caller serialises calls.
type schedule struct {
	mode  Mode
	rate  float64 // events per second; unused by Closed
	batch int
	total int64 // events in the run; math.MaxInt64 for "until stopped"
	next  int64
}

func newSchedule(mode Mode, rate float64, batch int, window time.Duration, events int64) *schedule {
	s := &schedule{mode: mode, rate: rate, batch: batch, total: math.MaxInt64}
	switch {
	case events > 0:
		s.total = events
	case mode == Fixed:
		// Whole transactions only.
		txs := int64(rate * window.Seconds() / float64(batch))
		s.total = txs * int64(batch)
	case mode == Adaptive:
		s.total = int64(rate * window.Seconds())
	}
	return s
}

// intended is when event i is due, as an offset from the start.
func (s *schedule) intended(i int64) time.Duration {
	switch s.mode {
	case Fixed:
		tx := i / int64(s.batch)
		return time.Duration(float64(tx*int64(s.batch)) / s.rate * float64(time.Second))
	case Adaptive:
		return time.Duration(float64(i) / s.rate * float64(time.Second))
	}
	return 0
}

// claim returns the unit a writer should write now, elapsed after the
// start: its first event and size, or how long to wait before asking again,
// or done when the run's events are all handed out.
func (s *schedule) claim(elapsed time.Duration) (first int64, n int, wait time.Duration, done bool) {
	if s.next >= s.total {
		return 0, 0, 0, true
	}
	if due := s.intended(s.next); due > elapsed {
		return 0, 0, due - elapsed, false
	}
	n = s.batch
	if s.mode == Adaptive {
		// Every event due by now, up to a batch.
		dueCount := int64(elapsed.Seconds()*s.rate) + 1
		n = int(min(dueCount-s.next, int64(s.batch)))
		n = max(n, 1)
	}
	n = int(min(int64(n), s.total-s.next))
	first = s.next
	s.next += int64(n)
	return first, n, 0, false
}
