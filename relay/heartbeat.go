package relay

import (
	"context"
	"time"

	"github.com/cdcrelay/cdcrelay/slot"
)

// emitHeartbeats writes a non-transactional logical message every interval
// until ctx ends, and warns when the previous one has not come back in time.
func (r *Relay) emitHeartbeats(ctx context.Context) {
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	emitted := time.Time{}
	for {
		if !emitted.IsZero() && !r.heartbeat.BackSince(emitted) && time.Since(emitted) > 3*r.cfg.HeartbeatInterval {
			r.log.Warn().Dur("waiting", time.Since(emitted)).Msg("heartbeat has not come back through the slot")
		}
		now := time.Now()
		var lsn *string
		err := r.pool.QueryRow(ctx, `SELECT pg_logical_emit_message(false, $1, $2)::text`,
			slot.HeartbeatPrefix, slot.Content(now)).Scan(&lsn)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.log.Warn().Err(err).Msg("emit heartbeat")
		case lsn == nil:
			r.log.Warn().Msg("emit heartbeat: no LSN returned")
		default:
			if emitted.IsZero() || r.heartbeat.BackSince(emitted) {
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
