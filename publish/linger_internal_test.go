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
		if got := b.linger(t0.Add(c.now)); got != c.want {
			t.Errorf("%s: linger %v, want %v", c.name, got, c.want)
		}
	}
}
