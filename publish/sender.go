package publish

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// sender publishes submitted items in window order. It is the only
// goroutine that publishes, so the chain of expected ids follows the order of
// the window. Before each publish it checks for a pause and parks, so a
// recovery knows nothing more will be sent until it resumes.
func (p *Pipeline) sender(ctx context.Context) {
	for {
		p.mu.Lock()
		if p.paused || p.sendErr != nil {
			p.parked = true
			p.mu.Unlock()
			signal(p.parkedCh)
			if !wait(ctx, p.sendCh) {
				return
			}
			continue
		}
		if p.w.sent == p.w.added {
			p.mu.Unlock()
			if !wait(ctx, p.sendCh) {
				return
			}
			continue
		}
		pos := p.w.sent
		it := p.w.items[p.w.slot(pos)]
		last, filter := p.lastID, p.filter
		p.mu.Unlock()

		var (
			fut  jetstream.PubAckFuture
			dead error
			id   string
		)
		if ev := it.Event; ev != nil {
			switch {
			case ev.Problem != nil:
				dead = ev.Problem
			case !filter.matches(ev.Subject) && !p.refreshedFilterMatches(ctx, ev.Subject, &filter):
				if p.hasSendErr() {
					continue
				}
				dead = fmt.Errorf("no stream captures subject %q: stream %s takes %v (add the subject to the stream, then replay the dead letter)", ev.Subject, p.cfg.Stream, []string(filter))
			default:
				id = ev.EventIDString()
				var err error
				fut, err = p.js.PublishMsgAsync(message(ev, id, last), p.opts...)
				if err != nil && permanentSendErr(err) {
					dead = fmt.Errorf("publish refused: %w", err)
				} else if err != nil {
					p.mu.Lock()
					p.sendErr = err
					p.mu.Unlock()
					signal(p.ackCh)
					continue
				}
			}
		}

		p.mu.Lock()
		i := p.w.slot(pos)
		p.w.futs[i] = fut
		p.w.sentAt[i] = time.Now()
		p.w.items[i].DeadLetter = dead
		if fut != nil {
			p.lastID = id
		}
		p.w.sent++
		p.mu.Unlock()
		signal(p.ackCh)
	}
}

// wait blocks until ch is signalled (true) or ctx ends (false).
func wait(ctx context.Context, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// filterRefresh bounds how often an unmatched subject re-reads the stream's
// subjects: an operator who adds a subject with `stream ensure` should not
// have to restart the relay, but a burst of unmatched events must not turn
// into a burst of stream info requests.
const filterRefresh = 2 * time.Second

// refreshedFilterMatches re-reads the stream's subjects, at most every
// filterRefresh, and reports whether subject matches them now. A failed read
// is a transient send error: the acker recovers, and nothing is dead-lettered
// on stale information.
func (p *Pipeline) refreshedFilterMatches(ctx context.Context, subject string, filter *subjectFilter) bool {
	p.mu.Lock()
	fresh := time.Since(p.filterAt) < filterRefresh
	p.mu.Unlock()
	if fresh {
		return false
	}
	// Only the subjects are taken: the chain's expected id is the sender's.
	f, _, err := p.streamState(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.sendErr = err
		return false
	}
	p.filter, p.filterAt, *filter = f, time.Now(), f
	return f.matches(subject)
}

func (p *Pipeline) hasSendErr() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sendErr != nil
}
