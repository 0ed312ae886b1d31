package slot

import (
	"strconv"
	"sync/atomic"
	"time"
)

// HeartbeatPrefix marks the relay's own logical decoding messages: emitted
// non-transactionally, each comes back through the slot at once, proves the
// slot is moving and gives the session a position to confirm in a quiet
// outbox.
const HeartbeatPrefix = "cdcrelay"

// Heartbeats records heartbeats coming back through the slot: one emitted
// every interval must come back, or the slot has stalled silently. The
// session writes it; anyone may read it.
type Heartbeats struct {
	lastBack atomic.Int64 // unix nanos when the last heartbeat came back
	lastRTT  atomic.Int64 // nanos from emit to receipt
}

// Received records a heartbeat whose content is its emit time (unix nanos).
func (h *Heartbeats) Received(content []byte) {
	now := time.Now()
	sent, err := strconv.ParseInt(string(content), 10, 64)
	if err == nil && sent > 0 && sent <= now.UnixNano() {
		h.lastRTT.Store(now.UnixNano() - sent)
	}
	h.lastBack.Store(now.UnixNano())
}

// Content is what a heartbeat emitted at t carries.
func Content(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// Age is how long ago the last heartbeat came back; zero if none has.
func (h *Heartbeats) Age() time.Duration {
	last := h.lastBack.Load()
	if last == 0 {
		return 0
	}
	return time.Since(time.Unix(0, last))
}

// BackSince reports whether a heartbeat came back at or after t.
func (h *Heartbeats) BackSince(t time.Time) bool { return h.lastBack.Load() >= t.UnixNano() }

// RTT is how long the last heartbeat took from emit to receipt.
func (h *Heartbeats) RTT() time.Duration { return time.Duration(h.lastRTT.Load()) }
