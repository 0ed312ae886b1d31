package election

import (
	"math/rand/v2"
	"time"
)

// backoff is capped exponential back-off with jitter. Each wait is drawn
// between d/2 and d for the current step d, so replicas that lost the server
// together do not reconnect in lock-step, and no wait collapses to zero.
type backoff struct {
	base, limit time.Duration
	next        time.Duration
}

func (b *backoff) wait() time.Duration {
	if b.next == 0 {
		b.next = b.base
	}
	d := b.next
	b.next = min(2*b.next, b.limit)
	half := d / 2
	return half + rand.N(d-half+1)
}

func (b *backoff) reset() { b.next = 0 }
