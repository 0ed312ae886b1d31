package slot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/replication"
)

// ErrUndrained is returned by Drain when its time ran out with events still
// in flight or flips not known flushed; the next leader sends them again.
var ErrUndrained = errors.New("drain timed out")

// Drain ends a term gracefully, after Run returned: it waits, within
// timeout, for the sink to release everything up to the last transaction's
// end and for the last flips to be known flushed, keeping the walsender
// informed, then confirms the final position. Data that arrives now is not
// handled: it lies beyond anything confirmed, so it comes again.
func (s *Session) Drain(ctx context.Context, timeout time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := s.awaitSettled(dctx)
	if err == nil {
		err = s.awaitFlushed(dctx)
	}
	if err == nil {
		err = s.awaitGuarded(dctx)
	}
	if err != nil && dctx.Err() == nil {
		return err
	}
	if serr := s.tend(ctx, true); serr != nil {
		return serr
	}
	if err != nil {
		return fmt.Errorf("%w: confirmed %s", ErrUndrained, s.sentPos)
	}
	return nil
}

// awaitSettled waits for the sink to release everything up to the last
// mark, sending status updates on time meanwhile: the events of a
// transaction the session stopped in the middle of cannot be confirmed, so
// they are not waited for.
func (s *Session) awaitSettled(ctx context.Context) error {
	settled := s.sink.Settled()
	for {
		t := time.NewTimer(max(time.Until(s.lastStatus.Add(s.cfg.StatusInterval)), flushProbe))
		select {
		case <-settled:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if err := s.tend(ctx, false); err != nil {
			return err
		}
	}
}

// awaitFlushed asks the walsender how far WAL is flushed until no flip
// waits for it any more.
func (s *Session) awaitFlushed(ctx context.Context) error {
	for s.waitingForFlush() {
		if err := s.tend(ctx, false); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f, err := s.conn.Receive(time.Now().Add(flushProbe))
		switch {
		case errors.Is(err, replication.ErrTimeout):
		case err != nil:
			return fmt.Errorf("receive from slot while draining: %w", err)
		case f.Kind == replication.FrameKeepalive:
			s.pos.Flushed(f.ServerWALEnd)
			if f.ReplyRequested {
				if err := s.tend(ctx, true); err != nil {
					return err
				}
			}
		case f.WALStart != 0:
			s.pos.Flushed(f.WALStart)
		}
	}
	return nil
}

// awaitGuarded waits, in a session that filters by origin, until the
// outbox's guard is proven past the position (Guarded), keeping the
// walsender informed.
func (s *Session) awaitGuarded(ctx context.Context) error {
	for s.pos.Held() {
		if err := s.tend(ctx, false); err != nil {
			return err
		}
		t := time.NewTimer(flushProbe)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// ForceFlushAfter is how long a flip's WAL may wait to be known flushed
// before the session forces a flush. Asynchronous commits reach disk within
// three wal_writer_delay (600 ms by default) by themselves.
const ForceFlushAfter = time.Second

// stuckFlush notices a flip whose WAL has not been flushed for
// ForceFlushAfter. The flip's WAL end is read after its commit, so WAL that
// another session wrote in between counts too; if that session then idles
// in its transaction nothing may flush it for a long time.
type stuckFlush struct {
	needs pglogrepl.LSN
	since time.Time
}

func (s *stuckFlush) due(pos *position) bool {
	needs, waiting := pos.Waiting()
	if !waiting {
		s.needs = 0
		return false
	}
	if needs != s.needs {
		s.needs, s.since = needs, time.Now()
		return false
	}
	if time.Since(s.since) < ForceFlushAfter {
		return false
	}
	s.since = time.Now()
	return true
}

// forceFlush commits a transaction that waits for its WAL to be flushed
// locally, which flushes every WAL record before its own. The transaction
// must write WAL of its own, or its commit is not flushed: a transactional
// logical message (which the session ignores) is the smallest write the
// relay's role may make. Local is enough, and never waits on a synchronous
// standby: what counts as flushed is still only what the walsender sends.
func forceFlush(ctx context.Context, run election.Runner) error {
	return run(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("SET LOCAL synchronous_commit = local")
		b.Queue("SELECT pg_logical_emit_message(true, 'cdcrelay-flush', '')")
		b.Queue("COMMIT")
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("flush WAL: %w", err)
		}
		return nil
	})
}
