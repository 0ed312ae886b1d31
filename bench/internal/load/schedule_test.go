package load

import (
	"testing"
	"time"
)

func TestFixedSchedule(t *testing.T) {
	// 1000 events/s in 100-event transactions: one transaction every 100 ms.
	s := newSchedule(Fixed, 1000, 100, time.Second, 0)
	if s.total != 1000 {
		t.Fatalf("total = %d, want 1000", s.total)
	}
	first, n, wait, done := s.claim(0)
	if first != 0 || n != 100 || wait != 0 || done {
		t.Fatalf("claim(0) = %d,%d,%v,%v", first, n, wait, done)
	}
	if _, _, wait, _ = s.claim(30 * time.Millisecond); wait != 70*time.Millisecond {
		t.Fatalf("second transaction due in %v, want 70ms", wait)
	}
	// A writer that is late gets the overdue transactions one by one, and
	// each keeps its own intended time: coordinated omission is counted.
	for k := int64(1); k <= 3; k++ {
		first, n, _, _ = s.claim(350 * time.Millisecond)
		if first != k*100 || n != 100 {
			t.Fatalf("late claim %d = %d,%d", k, first, n)
		}
		if got, want := s.intended(first+42), time.Duration(k)*100*time.Millisecond; got != want {
			t.Fatalf("intended(%d) = %v, want %v", first+42, got, want)
		}
	}
	if _, _, wait, _ = s.claim(350 * time.Millisecond); wait != 50*time.Millisecond {
		t.Fatalf("caught-up writer waits %v, want 50ms", wait)
	}
	for range 6 {
		s.claim(time.Hour)
	}
	if _, _, _, done = s.claim(time.Hour); !done {
		t.Fatal("schedule not done after 10 transactions")
	}
}

func TestAdaptiveGroupsDueEvents(t *testing.T) {
	s := newSchedule(Adaptive, 10000, 100, time.Second, 0) // one event per 100 µs
	if _, n, _, _ := s.claim(0); n != 1 {
		t.Fatalf("first claim took %d events, want 1", n)
	}
	// 1 ms later events 1..10 are due.
	first, n, _, _ := s.claim(time.Millisecond)
	if first != 1 || n != 10 {
		t.Fatalf("claim at 1ms = %d,%d, want 1,10", first, n)
	}
	// Far behind: capped at one batch.
	if _, n, _, _ = s.claim(time.Second / 2); n != 100 {
		t.Fatalf("claim far behind took %d, want 100", n)
	}
	if got := s.intended(5000); got != 500*time.Millisecond {
		t.Fatalf("intended(5000) = %v", got)
	}
}

func TestClosedCountCap(t *testing.T) {
	s := newSchedule(Closed, 0, 100, 0, 250)
	var sizes []int
	for {
		_, n, wait, done := s.claim(0)
		if done {
			break
		}
		if wait != 0 {
			t.Fatal("closed loop never waits")
		}
		sizes = append(sizes, n)
	}
	if len(sizes) != 3 || sizes[2] != 50 {
		t.Fatalf("sizes = %v, want [100 100 50]", sizes)
	}
}
