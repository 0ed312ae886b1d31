package relay

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/slot"
)

// stream reads the slot from start until read ends, calling up once the
// stream has started. If read ended for a graceful shutdown (work still
// alive), it then drains the session: every event in flight acked, flipped
// and confirmed, within ShutdownTimeout.
func (r *Relay) stream(read, work context.Context, sess *slot.Session, start pglogrepl.LSN, origin string, up func()) error {
	if err := sess.Start(read, start, origin); err != nil {
		if read.Err() != nil {
			return nil
		}
		return err
	}
	up()
	r.streamingSince.Store(time.Now().UnixNano())
	r.originFiltered.Store(origin != "")
	r.streaming.Store(true)
	r.log.Info().Str("slot", r.cfg.Slot).Stringer("from", start).Bool("origin_filter", origin != "").Msg("streaming")
	err := sess.Run(read)
	r.streaming.Store(false)
	r.originFiltered.Store(false)
	if read.Err() == nil {
		return err
	}
	if work.Err() != nil {
		return nil // leadership lost or a worker failed: no drain possible
	}
	err = sess.Drain(work, r.cfg.ShutdownTimeout)
	if errors.Is(err, slot.ErrUndrained) {
		r.log.Warn().Err(err).Msg("shutdown timeout: events still in flight will be sent again by the next leader")
		return nil
	}
	if err != nil {
		return err
	}
	r.log.Info().Stringer("confirmed", sess.Confirmed()).Msg("drained")
	return nil
}
