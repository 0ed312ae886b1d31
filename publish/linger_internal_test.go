package publish

import (
	"testing"
	"time"
)

func TestBatchLinger(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	for _, c := range []struct {
		name          string
		n, acked      uint32
		lastSent, now time.Duration // after t0
		heard         time.Duration
		want          time.Duration
	}{
		{"all acked: until commitLinger after the last message", 5, 5, 0, 10 * ms, 0, commitLinger - 10*ms},
		{"all acked, quiet for commitLinger: commit", 5, 5, 0, commitLinger, 0, 0},
		{"unacked, recent word: the sooner of both", 5, 2, 190 * ms, 195 * ms, 0, ackLinger - 195*ms},
		{"unacked for ackLinger: commit though messages keep coming", 5, 2, 199 * ms, 200 * ms, 0, 0},
		{"unacked, an ack just came: commitLinger bounds", 5, 2, 100 * ms, 110 * ms, 105 * ms, commitLinger - 10*ms},
	} {
		b := batch{open: true, n: c.n, acked: c.acked, lastSent: t0.Add(c.lastSent), heard: t0.Add(c.heard)}
		if got := b.linger(t0.Add(c.now), DefaultAckTimeout); got != c.want {
			t.Errorf("%s: linger %v, want %v", c.name, got, c.want)
		}
	}
	// A short ack timeout shortens the wait for an ack, so that the batch
	// is committed, not sealed.
	b := batch{open: true, n: 5, acked: 2, lastSent: t0, heard: t0}
	if got, want := b.linger(t0.Add(10*ms), 200*ms), 40*ms; got != want {
		t.Errorf("ack timeout 200ms: linger %v, want %v", got, want)
	}
}

// A batch lingers only while more events can still join it and nobody waits
// for the window to drain.
func TestCommitWaitsOnlyWhenMoreCanCome(t *testing.T) {
	t0 := time.Unix(1000, 0)
	open := batch{open: true, n: 5, acked: 5, lastSent: t0, heard: t0}
	p := &Pipeline{cfg: Config{AckTimeout: DefaultAckTimeout}, b: open, w: newWindow(8, 1<<20)}
	if got := p.commitWait(t0.Add(time.Millisecond)); got <= 0 {
		t.Fatalf("room in the window, nobody waiting: wait %v, want the linger", got)
	}
	p.w.blocked = true
	if got := p.commitWait(t0.Add(time.Millisecond)); got > 0 {
		t.Fatalf("window full: wait %v, want a commit now", got)
	}
	p.w.blocked = false
	p.waiters = []waiter{{target: 1, ch: make(chan struct{})}}
	if got := p.commitWait(t0.Add(time.Millisecond)); got > 0 {
		t.Fatalf("a drain waiting: wait %v, want a commit now", got)
	}
	p.waiters = nil
	p.cfg.AtomicTransactions = true
	if got := p.commitWait(t0.Add(time.Millisecond)); got > 0 {
		t.Fatalf("atomic mode: wait %v, want a commit now", got)
	}
}
