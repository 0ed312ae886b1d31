package publish

import (
	"testing"

	"github.com/cdcrelay/cdcrelay/flow"
)

// Release while a Submit waits for room wakes the sender as well as the
// Submit: in atomic mode a transaction that fills the window alone can be
// handed over only once everything before it is released, and when the
// room released is still too little for the Submit, nothing else would
// wake the sender (it sleeps until a transaction ends). Found by review: a
// 1 MB-event transaction right after a small one stalled for an hour.
func TestReleaseWakesTheSenderWhileASubmitWaits(t *testing.T) {
	p := &Pipeline{cfg: Config{AtomicTransactions: true}, w: newWindow(8, 1000),
		roomCh: make(chan struct{}, 1), sendCh: make(chan struct{}, 1)}
	small := flow.Item{Event: &flow.Event{Payload: make([]byte, 10)}}
	large := flow.Item{Event: &flow.Event{Payload: make([]byte, 600)}}
	for _, it := range []flow.Item{small, {Mark: 1}, large} { // A, its end, B1
		p.w.add(it)
	}
	p.w.sent, p.w.resolved = 2, 2 // A stored, B1 waits for its transaction's end
	if got := p.w.take(make([]flow.Item, 0, 8)); len(got) != 2 {
		t.Fatalf("took %d items, want A and its mark", len(got))
	}
	if p.w.fits(large.Size()) {
		t.Fatal("B2 fits: the test needs a window B1 and B2 overflow")
	}
	// B2's Submit waits for room, and the sender has heard it (its plan:
	// wait, since A is not released): no signal is pending.
	p.w.blocked = true
	p.Release(2)
	if !p.w.blocked || p.w.fits(large.Size()) {
		t.Fatal("B2 fits after A's release: the test needs one that still waits")
	}
	select {
	case <-p.sendCh:
	default:
		t.Fatal("Release left the sender asleep while a Submit waits: a transaction larger than the window is never handed over")
	}
}
