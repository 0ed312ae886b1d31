package publish

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/internal/backoff"
)

// acker consumes acks in window order. A transient failure of the oldest
// unresolved publish (or of a send) starts a recovery; a permanent refusal
// dead-letters the event and goes on.
func (p *Pipeline) acker(ctx context.Context) {
	retry := backoff.Backoff{Base: p.cfg.MinBackoff, Limit: p.cfg.MaxBackoff}
	for {
		p.mu.Lock()
		if p.w.resolved == p.w.sent {
			cause := p.sendErr
			p.mu.Unlock()
			if cause != nil {
				if !p.recover(ctx, cause, false, &retry) {
					return
				}
				continue
			}
			if !wait(ctx, p.ackCh) {
				return
			}
			continue
		}
		i := p.w.slot(p.w.resolved)
		fut, sentAt := p.w.futs[i], p.w.sentAt[i]
		subject := ""
		if ev := p.w.items[i].Event; ev != nil {
			subject = ev.Subject
		}
		p.mu.Unlock()

		var (
			err error
			dup bool
		)
		if fut != nil {
			var ok bool
			if dup, err, ok = p.awaitAck(ctx, fut, subject, sentAt); !ok {
				return
			}
		}
		if err != nil && !permanentAckErr(err) && !isPermissionErr(err) {
			if !p.recover(ctx, err, true, &retry) {
				return
			}
			continue
		}
		retry.Reset()
		if fut != nil && err == nil && p.cfg.OnAck != nil {
			p.cfg.OnAck(time.Since(sentAt))
		}

		p.mu.Lock()
		if err != nil {
			p.w.items[i].DeadLetter = err
		}
		switch {
		case p.w.items[i].DeadLetter != nil:
			p.stats.DeadLetters++
			p.count(func(c *Counters) { c.DeadLetters.Add(1) })
		case fut != nil && dup:
			p.stats.Duplicates++
			p.count(func(c *Counters) { c.Duplicates.Add(1) })
		case fut != nil:
			p.stats.Published++
			p.count(func(c *Counters) { c.Published.Add(1) })
		}
		p.w.resolved++
		p.mu.Unlock()
		signal(p.resolvedCh)
	}
}

// awaitAck waits for the ack of a publish of subject sent at sentAt. A
// permissions violation for its subject since then ends the wait at once
// with a *PermissionError: the server dropped the message and no ack will
// come. ok is false when ctx ended.
func (p *Pipeline) awaitAck(ctx context.Context, fut jetstream.PubAckFuture, subject string, sentAt time.Time) (dup bool, err error, ok bool) {
	for {
		select {
		case ack := <-fut.Ok():
			return ack.Duplicate, nil, true
		case err = <-fut.Err():
			if denied := p.denied.since(subject, sentAt); denied != nil {
				err = denied
			}
			return false, err, true
		case <-p.denied.ch:
			if denied := p.denied.since(subject, sentAt); denied != nil {
				return false, denied, true
			}
		case <-ctx.Done():
			return false, nil, false
		}
	}
}

func isPermissionErr(err error) bool {
	var perm *PermissionError
	return errors.As(err, &perm)
}

// recover makes the window consistent with the stream after a failure: it
// stops the sender, lets every outstanding publish resolve (so nothing sent
// earlier can land after the resend), reads the stream's last message id
// (retrying with back-off while NATS or the stream is unavailable), and
// resumes sending from the first unresolved item. headFailed says the
// oldest unresolved publish is the one that failed: its future is spent. It
// returns false when ctx ended.
func (p *Pipeline) recover(ctx context.Context, cause error, headFailed bool, retry *backoff.Backoff) bool {
	p.report(cause)
	p.mu.Lock()
	p.paused = true
	p.parked = false
	p.stats.Recoveries++
	p.count(func(c *Counters) { c.Recoveries.Add(1) })
	p.mu.Unlock()
	signal(p.sendCh)
	for {
		p.mu.Lock()
		parked := p.parked
		p.mu.Unlock()
		if parked {
			break
		}
		if !wait(ctx, p.parkedCh) {
			return false
		}
	}

	p.mu.Lock()
	var outstanding []jetstream.PubAckFuture
	from := p.w.resolved
	if headFailed {
		from++
	}
	for pos := from; pos < p.w.sent; pos++ {
		if f := p.w.futs[p.w.slot(pos)]; f != nil {
			outstanding = append(outstanding, f)
		}
	}
	p.mu.Unlock()
	for _, f := range outstanding {
		select {
		case <-f.Ok():
		case <-f.Err():
		case <-ctx.Done():
			return false
		}
	}

	for {
		if !backoff.Sleep(ctx, retry.Next()) {
			return false
		}
		filter, last, err := p.streamState(ctx)
		if err == nil {
			p.mu.Lock()
			for pos := p.w.resolved; pos < p.w.sent; pos++ {
				p.w.futs[p.w.slot(pos)] = nil
			}
			p.w.sent = p.w.resolved
			p.filter, p.filterAt, p.lastID = filter, time.Now(), last
			p.sendErr = nil
			p.paused, p.parked = false, false
			p.mu.Unlock()
			signal(p.sendCh)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		p.report(err)
	}
}

func (p *Pipeline) report(err error) {
	if p.cfg.OnRetry != nil {
		p.cfg.OnRetry(err)
	}
}

// streamState reads what the pipeline needs of the stream: the subjects it
// captures and the Nats-Msg-Id of its last message (empty when the stream is
// empty or the last message has none).
func (p *Pipeline) streamState(ctx context.Context) (subjectFilter, string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	s, err := p.js.Stream(ctx, p.cfg.Stream)
	if err != nil {
		return nil, "", streamErr(p.cfg.Stream, err)
	}
	info := s.CachedInfo()
	filter := subjectFilter(info.Config.Subjects)
	if len(filter) == 0 {
		filter = subjectFilter{info.Config.Name}
	}
	last := ""
	if info.State.LastSeq > 0 {
		m, err := s.GetMsg(ctx, info.State.LastSeq)
		switch {
		case err == nil:
			last = m.Header.Get(jetstream.MsgIDHeader)
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return nil, "", streamErr(p.cfg.Stream, err)
		}
	}
	return filter, last, nil
}

func (p *Pipeline) count(f func(*Counters)) {
	if p.cfg.Counters != nil {
		f(p.cfg.Counters)
	}
}
