package slot

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

func TestPositionWaitsForTheFlipsWAL(t *testing.T) {
	var p position
	p.Resume(100)
	p.Wrote(1000)
	p.Flipped(200)
	p.Wrote(1100)
	p.Flipped(300)
	if got := p.Load(); got != 100 {
		t.Fatalf("position %s before any flip is flushed, want 100", got)
	}
	if needs, ok := p.Waiting(); !ok || needs != 1100 {
		t.Fatalf("Waiting = %s, %v; want 1100, true", needs, ok)
	}
	p.Flushed(1050)
	if got := p.Load(); got != 200 {
		t.Fatalf("position %s with the first flip flushed, want 200", got)
	}
	p.Flushed(1100)
	if got := p.Load(); got != 300 {
		t.Fatalf("position %s with both flushed, want 300", got)
	}
	if _, ok := p.Waiting(); ok {
		t.Fatal("still waiting with every flip flushed")
	}
	p.Wrote(1090) // already flushed
	p.Flipped(400)
	if got := p.Load(); got != 400 {
		t.Fatalf("position %s after a flip already on disk, want 400", got)
	}
}

func TestPositionIdleAdvanceWaitsForEarlierFlips(t *testing.T) {
	var p position
	p.Wrote(1000)
	p.Flipped(200)
	p.Idle(900) // a keepalive: WAL is flushed to 900, not to the flip's 1000
	if got := p.Load(); got != 0 {
		t.Fatalf("idle advance to %s passed a flip not on disk", got)
	}
	p.Idle(1200)
	if got := p.Load(); got != 1200 {
		t.Fatalf("position %s, want the keepalive's 1200 once the flip is flushed", got)
	}
}

func TestPositionMarkOnlyFlipWaitsBehindEarlierOnes(t *testing.T) {
	var p position
	p.Wrote(1000)
	p.Flipped(200)
	p.Flipped(300) // a heartbeat mark: no write of its own
	p.Flushed(999)
	if got := p.Load(); got != 0 {
		t.Fatalf("position %s: a later mark overtook an unflushed flip", got)
	}
	p.Flushed(1000)
	if got := p.Load(); got != 300 {
		t.Fatalf("position %s, want 300", got)
	}
}

func TestPositionGatesAreBoundedAndStaySafe(t *testing.T) {
	var p position
	for i := 1; i <= 10000; i++ {
		p.Wrote(pglogrepl.LSN(100000 + i))
		p.Flipped(pglogrepl.LSN(i * 10))
	}
	p.Flushed(100000 + 5000)
	if got := p.Load(); got > 50000 {
		t.Fatalf("position %s passed flips whose WAL is not flushed", got)
	}
	p.Flushed(100000 + 10000)
	if got := p.Load(); got != 100000 {
		t.Fatalf("position %s, want 100000", got)
	}
}

// A flip whose batch ends inside a transaction makes nothing confirmable by
// itself, but the transaction's end, flipped by a later batch with no write
// of its own (only its commit mark), depends on it.
func TestPositionFlipWithoutWatermarkHoldsLaterOnes(t *testing.T) {
	var p position
	p.Wrote(1000) // the event's flip; the batch has no commit mark
	p.Flipped(500)
	if got := p.Load(); got != 0 {
		t.Fatalf("position %s: a mark-only batch overtook the unflushed flip of its event", got)
	}
	p.Idle(600)
	if got := p.Load(); got != 0 {
		t.Fatalf("position %s: an idle keepalive overtook an unflushed flip", got)
	}
	p.Flushed(1000)
	if got := p.Load(); got != 500 {
		t.Fatalf("position %s, want 500", got)
	}
	p.Idle(1200)
	if got := p.Load(); got != 1200 {
		t.Fatalf("position %s, want the next keepalive's 1200", got)
	}
}

func TestPositionResumeNeverMovesBack(t *testing.T) {
	var p position
	p.Resume(100)
	p.Resume(50)
	if got := p.Load(); got != 100 {
		t.Fatalf("position %s, want 100", got)
	}
}

// A stream that filters by origin confirms only as far as the outbox's
// guard is proven: the cap holds the position back until raised.
func TestPositionCap(t *testing.T) {
	var p position
	p.Resume(100)
	p.Cap(100)
	p.Flipped(300)
	if got, held := p.Load(), p.Held(); got != 100 || !held {
		t.Fatalf("position %s, held %v under a cap at 100; want 100, true", got, held)
	}
	p.Cap(50) // a cap never moves back
	p.Cap(250)
	if got := p.Load(); got != 250 {
		t.Fatalf("position %s under a cap at 250, want 250", got)
	}
	p.Cap(1000)
	if got, held := p.Load(), p.Held(); got != 300 || held {
		t.Fatalf("position %s, held %v under a cap at 1000; want 300, false", got, held)
	}
}

// A position that moves past the cap says so, once per move, without
// blocking.
func TestPositionCapSignalsHeld(t *testing.T) {
	p := position{held: make(chan struct{}, 1)}
	p.Resume(100)
	p.Flipped(200) // not capped: no signal
	select {
	case <-p.held:
		t.Fatal("held signalled without a cap")
	default:
	}
	p.Cap(200)
	p.Flipped(300)
	p.Flipped(400) // the signal is pending already: does not block
	select {
	case <-p.held:
	default:
		t.Fatal("no held signal for a position past the cap")
	}
}
