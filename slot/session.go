package slot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/decode"
	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/replication"
)

// Sink takes what the session reads, in commit order: the publish window
// (publish.Pipeline).
type Sink interface {
	// Submit adds an item, waiting for room until deadline; it returns
	// flow.ErrFull if the window is still full then.
	Submit(ctx context.Context, it flow.Item, deadline time.Time) error
	// Idle reports whether every item submitted so far has been released.
	Idle() bool
	// Settled is closed once every item up to the last mark submitted so far
	// is released.
	Settled() <-chan struct{}
}

// Config is what a Session needs besides its connection and its sink.
type Config struct {
	Name        string // the slot
	Publication string
	// StatusInterval is the longest the session stays silent towards the
	// walsender, also while the sink is full.
	StatusInterval time.Duration
	// Flush runs a synchronous commit when a flip's WAL has waited
	// ForceFlushAfter to be known flushed (the leader's lock connection).
	Flush election.Runner
	// Heartbeats, if set, records the relay's heartbeats as they come back.
	Heartbeats *Heartbeats
	// Trace stamps each event with the times of its stages (flow.Trace),
	// for diagnostic headers; off, the hot path skips the clock.
	Trace bool
	// ReceiveTimeout is how long the walsender may stay silent while the
	// session reads, PostgreSQL's own wal_receiver_timeout for the relay:
	// after half of it the session asks for a keepalive, and after all of
	// it Run fails with ErrSilent, since a connection whose path drops
	// packets without a reset would otherwise be read forever. Zero or
	// less: no limit.
	ReceiveTimeout time.Duration
}

// ErrSilent is returned by Run when the walsender sent nothing, not even
// the answer to a keepalive request, for ReceiveTimeout.
var ErrSilent = errors.New("the walsender is silent")

// flushProbe is how often the session asks the walsender how far it has
// decoded while a flip waits to be known flushed: only the walsender's
// positions count as flushed.
const flushProbe = 100 * time.Millisecond

// Session is one term's reading of the slot. Run, Drain and the Sink calls
// they make are the session's own goroutine's; Ack and Confirmed may be
// called from any goroutine.
type Session struct {
	conn *replication.Conn
	sink Sink
	cfg  Config
	dec  *decode.Decoder
	pos  position

	// Owned by the reading goroutine.
	inTx       bool
	lastStatus time.Time
	sentPos    pglogrepl.LSN
	stuck      stuckFlush
	// The commit timestamp of the open transaction and the send time of
	// the frame being handled, for each event's Trace.
	txCommitted, frameSent time.Time
	// heard counts frames, and waits for room in the sink (time not spent
	// listening); quiet is since when it has not moved, as Run last looked
	// (see listen). askReply: tend asks the walsender for a keepalive.
	heard, quietHeard uint64
	quiet             time.Time
	askReply          bool
}

// New prepares a session on conn for one term. Acks may come in at once (a
// backfill flips before streaming starts); nothing is confirmed before Start.
func New(conn *replication.Conn, sink Sink, cfg Config) *Session {
	s := &Session{
		conn: conn,
		sink: sink,
		cfg:  cfg,
		dec:  decode.New(decode.Table{Schema: "bus", Name: "outbox"}),
	}
	s.pos.held = make(chan struct{}, 1)
	return s
}

// Ack records a flip: every transaction up to done is acked and flipped (0
// when the flip ended inside a transaction and completed none), by flips
// whose commits end at or before walEnd (a WAL position read after them).
// done becomes confirmable once WAL is known flushed to walEnd.
func (s *Session) Ack(done, walEnd pglogrepl.LSN) {
	s.pos.Wrote(walEnd)
	if done != 0 {
		s.pos.Flipped(done)
	}
}

// Confirmed is the position this term confirms (or is about to) to the slot.
func (s *Session) Confirmed() pglogrepl.LSN { return s.pos.Load() }

// Guarded records that every outbox insert committed up to lsn went through
// the guard that refuses inserts made under a replication origin. A session
// started with origin "none" confirms no further than that: the stream
// drops such inserts, so a position past an unguarded stretch could skip
// an event for good, while a term that ends short of it leaves the stretch
// to the next, unfiltered term.
func (s *Session) Guarded(lsn pglogrepl.LSN) { s.pos.Cap(lsn) }

// Held receives when the guard's cap holds back a position that is
// confirmable otherwise: time to prove the guard again (Guarded).
func (s *Session) Held() <-chan struct{} { return s.pos.held }

// Start resumes the position from the slot's (or a new slot's consistent
// point) and starts streaming from it. origin is pgoutput's origin option:
// "none" drops every change made under a replication origin, the relay's
// own flips included, before the walsender decodes it; "" streams them all.
func (s *Session) Start(ctx context.Context, from pglogrepl.LSN, origin string) error {
	s.pos.Resume(from)
	if origin != "" {
		s.pos.Cap(from)
	}
	binary := s.conn.SupportsMessages()
	if s.cfg.ReceiveTimeout > 0 {
		// The walsender answers once it holds the slot; decoding starts after.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.ReceiveTimeout)
		defer cancel()
	}
	if err := s.conn.Start(ctx, s.cfg.Name, from, replication.StartOptions{
		Publication: s.cfg.Publication, Binary: binary, Messages: binary, Origin: origin,
	}); err != nil {
		return fmt.Errorf("start replication: %w", err)
	}
	s.lastStatus = time.Now()
	s.quiet = s.lastStatus
	return nil
}

// Run reads, decodes and submits until ctx ends (nil) or reading fails.
func (s *Session) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := s.tend(ctx, false); err != nil {
			return err
		}
		deadline := s.lastStatus.Add(s.cfg.StatusInterval)
		wake := time.Second
		if s.waitingForFlush() {
			wake = flushProbe
		}
		if d := time.Now().Add(wake).Truncate(flushProbe).Add(flushProbe); d.Before(deadline) {
			// Wake at least every second to notice cancellation and send
			// progress promptly when the position moved; more often while
			// a flip waits to be known flushed. Rounded, so that the
			// socket's deadline changes a few times a second, not at every
			// frame.
			deadline = d
		}
		f, err := s.conn.Receive(deadline)
		if errors.Is(err, replication.ErrTimeout) {
			if err := s.listen(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive from slot: %w", err)
		}
		s.heard++
		switch f.Kind {
		case replication.FrameKeepalive:
			// Idle advance: with nothing in flight and no open transaction,
			// everything before the walsender's position has been handled.
			// Either way that position is flushed: the walsender decodes
			// flushed WAL only.
			if !s.inTx && s.sink.Idle() {
				s.pos.Idle(f.ServerWALEnd)
			} else {
				s.pos.Flushed(f.ServerWALEnd)
			}
			if f.ReplyRequested {
				if err := s.tend(ctx, true); err != nil {
					return err
				}
			}
		case replication.FrameXLogData:
			s.frameSent = f.ServerTime
			if err := s.handle(ctx, f.Data); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
	return nil
}

// listen runs when a read timed out: it asks for a keepalive once the
// walsender has been silent for half of ReceiveTimeout and fails when it
// is silent for all of it. Frames are counted, not timed, so that the hot
// path reads no clock: silence is measured from the first timeout that
// finds the count unchanged.
func (s *Session) listen() error {
	if s.cfg.ReceiveTimeout <= 0 {
		return nil
	}
	now := time.Now()
	if s.heard != s.quietHeard {
		s.quietHeard, s.quiet = s.heard, now
		return nil
	}
	switch silent := now.Sub(s.quiet); {
	case silent >= s.cfg.ReceiveTimeout:
		return fmt.Errorf("%w: nothing came for %v, not even the answer to a keepalive request: the connection or its path is dead", ErrSilent, silent.Round(time.Second))
	case silent >= s.cfg.ReceiveTimeout/2 && s.lastStatus.Before(s.quiet.Add(s.cfg.ReceiveTimeout/2)):
		s.askReply = true // once: the status sent now is after the half
	}
	return nil
}

func (s *Session) handle(ctx context.Context, data []byte) error {
	m, err := s.dec.Decode(data)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	switch m.Kind {
	case decode.KindBegin:
		s.inTx, s.txCommitted = true, m.CommitTime
	case decode.KindInsert:
		if s.cfg.Trace {
			m.Event.Trace = flow.Trace{Committed: s.txCommitted, Sent: s.frameSent, Received: time.Now()}
		}
		return s.submit(ctx, flow.Item{Event: m.Event})
	case decode.KindCommit:
		s.inTx = false
		s.pos.Flushed(m.EndLSN)
		return s.submit(ctx, flow.Item{Mark: m.EndLSN, Committed: m.CommitTime})
	case decode.KindMessage:
		if m.Prefix == HeartbeatPrefix {
			if s.cfg.Heartbeats != nil {
				s.cfg.Heartbeats.Received(m.Content)
			}
			if !s.inTx && !m.Transactional {
				return s.submit(ctx, flow.Item{Mark: m.MessageLSN})
			}
		}
	}
	return nil
}

// submit adds an item to the sink. While the sink is full it keeps the
// walsender informed, so back-pressure never looks like a dead client.
func (s *Session) submit(ctx context.Context, it flow.Item) error {
	for {
		err := s.sink.Submit(ctx, it, s.lastStatus.Add(s.cfg.StatusInterval))
		if !errors.Is(err, flow.ErrFull) {
			return err
		}
		s.heard++ // not listening meanwhile: silence counts from here
		if err := s.tend(ctx, false); err != nil {
			return err
		}
	}
}

// tend does what is due towards the server: a standby status update when
// forced, when the interval has passed, or when the position moved and the
// last update is not fresh; while a flip waits for its WAL, a keepalive
// request at most every flushProbe, and a forced flush once it has waited
// ForceFlushAfter.
func (s *Session) tend(ctx context.Context, force bool) error {
	if s.stuck.due(&s.pos) {
		// Not cancelled with ctx: cancelling a statement on the lock
		// connection ends the lease, and a shutdown should drain instead.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StatusInterval)
		err := forceFlush(fctx, s.cfg.Flush)
		cancel()
		if err != nil {
			return err
		}
	}
	pos := s.pos.Load()
	since := time.Since(s.lastStatus)
	probe := since >= flushProbe && s.waitingForFlush() || s.askReply
	if !force && !probe && since < s.cfg.StatusInterval && !(pos > s.sentPos && since >= 100*time.Millisecond) {
		return nil
	}
	send := s.conn.SendStatus
	if probe {
		send = s.conn.RequestKeepalive
	}
	if err := send(ctx, pos); err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	s.lastStatus, s.sentPos, s.askReply = time.Now(), pos, false
	return nil
}

func (s *Session) waitingForFlush() bool {
	_, waiting := s.pos.Waiting()
	return waiting
}
