// Package backoff is capped exponential back-off with jitter, and a sleep
// that ends with its context: what every reconnect loop of the relay uses.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff doubles from Base to Limit. Each wait is drawn between d/2 and d
// for the current step d, so replicas that lost a server together do not
// retry in lock-step, and no wait collapses to zero. The zero value waits
// nothing; set Base and Limit.
type Backoff struct {
	Base, Limit time.Duration
	next        time.Duration
}

// Next returns the next wait and doubles the step.
func (b *Backoff) Next() time.Duration {
	if b.next == 0 {
		b.next = b.Base
	}
	d := b.next
	b.next = min(2*b.next, b.Limit)
	half := d / 2
	return half + rand.N(d-half+1)
}

// Reset starts again from Base, after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Sleep waits d and reports true, or false as soon as ctx ends.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
