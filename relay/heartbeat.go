package relay

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"
)

// heartbeatPrefix marks the relay's own logical decoding messages.
const heartbeatPrefix = "cdcrelay"

// heartbeatState tracks heartbeats through the slot: one emitted every
// HeartbeatInterval must come back through the stream, or the slot has
// stalled silently.
type heartbeatState struct {
	lastBack atomic.Int64 // unix nanos when the last heartbeat came back
	lastRTT  atomic.Int64 // nanos from emit to receipt
}

func (h *heartbeatState) received(content []byte) {
	now := time.Now()
	sent, err := strconv.ParseInt(string(content), 10, 64)
	if err == nil && sent > 0 && sent <= now.UnixNano() {
		h.lastRTT.Store(now.UnixNano() - sent)
	}
	h.lastBack.Store(now.UnixNano())
}

func (h *heartbeatState) age() time.Duration {
	last := h.lastBack.Load()
	if last == 0 {
		return 0
	}
	return time.Since(time.Unix(0, last))
}

// emitHeartbeats writes a non-transactional logical message every interval
// until ctx ends, and warns when the previous one has not come back in time.
func (r *Relay) emitHeartbeats(ctx context.Context) {
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	emitted := time.Time{}
	for {
		if !emitted.IsZero() && r.heartbeat.lastBack.Load() < emitted.UnixNano() && time.Since(emitted) > 3*r.cfg.HeartbeatInterval {
			r.log.Warn().Dur("waiting", time.Since(emitted)).Msg("heartbeat has not come back through the slot")
		}
		now := time.Now()
		var lsn *string
		err := r.pool.QueryRow(ctx, `SELECT pg_logical_emit_message(false, $1, $2)::text`,
			heartbeatPrefix, strconv.FormatInt(now.UnixNano(), 10)).Scan(&lsn)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.log.Warn().Err(err).Msg("emit heartbeat")
		case lsn == nil:
			r.log.Warn().Msg("emit heartbeat: no LSN returned")
		default:
			if emitted.IsZero() || r.heartbeat.lastBack.Load() >= emitted.UnixNano() {
				emitted = now
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
