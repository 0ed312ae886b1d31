package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/checkpoint"
	"github.com/cdcrelay/cdcrelay/decode"
	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/replication"
)

// reader owns the replication connection: it receives, decodes and submits,
// and it alone talks back to the walsender.
type reader struct {
	r    *Relay
	rc   *replication.Conn
	pipe *publish.Pipeline
	pos  *checkpoint.Position
	dec  *decode.Decoder

	inTx       bool
	lastStatus time.Time
	sentPos    pglogrepl.LSN
}

// stream reads the slot from start until read ends. If read ended for a
// graceful shutdown (work still alive), it first drains: waits until every
// event in flight is acked, flipped and confirmed, within ShutdownTimeout.
func (r *Relay) stream(read, work context.Context, rc *replication.Conn, pipe *publish.Pipeline, pos *checkpoint.Position, start pglogrepl.LSN) error {
	binary := rc.ServerVersion() >= 140000
	if err := rc.Start(read, r.cfg.Slot, start, replication.StartOptions{
		Publication: r.cfg.Publication, Binary: binary, Messages: binary,
	}); err != nil {
		if read.Err() != nil {
			return nil
		}
		return fmt.Errorf("start replication: %w", err)
	}
	r.streamingSince.Store(time.Now().UnixNano())
	r.streaming.Store(true)
	r.log.Info().Str("slot", r.cfg.Slot).Stringer("from", start).Bool("binary", binary).Msg("streaming")
	rd := &reader{r: r, rc: rc, pipe: pipe, pos: pos, dec: decode.New(decode.Table{Schema: "bus", Name: "outbox"}), lastStatus: time.Now()}
	err := rd.loop(read)
	r.streaming.Store(false)
	if read.Err() == nil {
		return err
	}
	if work.Err() != nil {
		return nil // leadership lost or a worker failed: no drain possible
	}
	return rd.drain(work)
}

func (rd *reader) loop(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := rd.maybeStatus(ctx, false); err != nil {
			return err
		}
		deadline := rd.lastStatus.Add(rd.r.cfg.StatusInterval)
		wake := time.Second
		if rd.waitingForFlush() {
			wake = flushProbe
		}
		if d := time.Now().Add(wake); d.Before(deadline) {
			// Wake at least every second to notice cancellation and send
			// progress promptly when the checkpoint moved; more often while
			// a flip waits to be known flushed.
			deadline = d
		}
		f, err := rd.rc.Receive(deadline)
		if errors.Is(err, replication.ErrTimeout) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive from slot: %w", err)
		}
		switch f.Kind {
		case replication.FrameKeepalive:
			// Idle advance: with nothing in flight and no open transaction,
			// everything before the walsender's position has been handled.
			// Either way that position is flushed: the walsender decodes
			// flushed WAL only.
			if !rd.inTx && rd.pipe.Idle() {
				rd.pos.Idle(f.ServerWALEnd)
			} else {
				rd.pos.Flushed(f.ServerWALEnd)
			}
			if f.ReplyRequested {
				if err := rd.maybeStatus(ctx, true); err != nil {
					return err
				}
			}
		case replication.FrameXLogData:
			if err := rd.handle(ctx, f.Data); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
	return nil
}

func (rd *reader) handle(ctx context.Context, data []byte) error {
	m, err := rd.dec.Decode(data)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	switch m.Kind {
	case decode.KindBegin:
		rd.inTx = true
	case decode.KindInsert:
		return rd.submit(ctx, flow.Item{Event: m.Event})
	case decode.KindCommit:
		rd.inTx = false
		rd.pos.Flushed(m.EndLSN)
		return rd.submit(ctx, flow.Item{Mark: m.EndLSN, Committed: m.CommitTime})
	case decode.KindMessage:
		if m.Prefix == heartbeatPrefix {
			rd.r.heartbeat.received(m.Content)
			if !rd.inTx && !m.Transactional {
				return rd.submit(ctx, flow.Item{Mark: m.MessageLSN})
			}
		}
	}
	return nil
}

// submit adds an item to the window. While the window is full it keeps the
// walsender informed, so back-pressure never looks like a dead client.
func (rd *reader) submit(ctx context.Context, it flow.Item) error {
	for {
		err := rd.pipe.Submit(ctx, it, rd.lastStatus.Add(rd.r.cfg.StatusInterval))
		if !errors.Is(err, publish.ErrFull) {
			return err
		}
		if err := rd.maybeStatus(ctx, false); err != nil {
			return err
		}
	}
}

// flushProbe is how often the reader asks the walsender how far it has
// decoded while a flip waits to be known flushed: only the walsender's
// positions count as flushed (see checkpoint.Loop).
const flushProbe = 100 * time.Millisecond

// maybeStatus sends a standby status update when forced, when the interval
// has passed, or when the checkpoint moved and the last update is not fresh.
// While a flip waits for its WAL it asks for a keepalive in reply, at most
// every flushProbe.
func (rd *reader) maybeStatus(ctx context.Context, force bool) error {
	pos := rd.pos.Load()
	since := time.Since(rd.lastStatus)
	probe := since >= flushProbe && rd.waitingForFlush()
	if !force && !probe && since < rd.r.cfg.StatusInterval && !(pos > rd.sentPos && since >= 100*time.Millisecond) {
		return nil
	}
	send := rd.rc.SendStatus
	if probe {
		send = rd.rc.RequestKeepalive
	}
	if err := send(ctx, pos); err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	rd.lastStatus, rd.sentPos = time.Now(), pos
	return nil
}

// drain waits for the window to empty and the last flips to be known
// flushed, keeping the walsender informed and reading its positions, then
// confirms the final position. Data that arrives now is not handled: it lies
// beyond anything confirmed, so it comes again.
func (rd *reader) drain(work context.Context) error {
	ctx, cancel := context.WithTimeout(work, rd.r.cfg.ShutdownTimeout)
	defer cancel()
	for !rd.pipe.Idle() || rd.waitingForFlush() {
		if err := rd.maybeStatus(ctx, false); err != nil {
			return err
		}
		if ctx.Err() != nil {
			rd.r.log.Warn().Msg("shutdown timeout: events still in flight will be sent again by the next leader")
			break
		}
		f, err := rd.rc.Receive(time.Now().Add(20 * time.Millisecond))
		switch {
		case errors.Is(err, replication.ErrTimeout):
		case err != nil:
			return fmt.Errorf("receive from slot while draining: %w", err)
		case f.Kind == replication.FrameKeepalive:
			rd.pos.Flushed(f.ServerWALEnd)
			if f.ReplyRequested {
				if err := rd.maybeStatus(ctx, true); err != nil {
					return err
				}
			}
		case f.WALStart != 0:
			rd.pos.Flushed(f.WALStart)
		}
	}
	if err := rd.maybeStatus(work, true); err != nil {
		return err
	}
	rd.r.log.Info().Stringer("confirmed", rd.sentPos).Msg("drained")
	return nil
}

func (rd *reader) waitingForFlush() bool {
	_, waiting := rd.pos.Waiting()
	return waiting
}
