package publish

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/internal/backoff"
)

// sender is the pipeline's one goroutine: it publishes the window in order
// into one batch at a time, ends a batch when it is full or has had nothing
// more to send for commitLinger, seals a batch that broke or went quiet, and when
// a batch ends short it resolves what was stored and starts the next batch
// at the first event that was not.
// In atomic mode step is atomicStep, which hands transactions to step.
func (p *Pipeline) sender(ctx context.Context, step func(context.Context, *sendState) (time.Duration, error)) {
	s := &sendState{
		retry: backoff.Backoff{Base: p.cfg.MinBackoff, Limit: p.cfg.MaxBackoff},
		hdr:   make(nats.Header, 8),
		id:    make([]string, 1),
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		wait, err := step(ctx, s)
		if err != nil {
			p.report(err)
			if !backoff.Sleep(ctx, s.retry.Next()) {
				return
			}
			continue
		}
		if wait < 0 {
			continue
		}
		timer.Reset(wait) // no stale tick since Go 1.23
		select {
		case <-p.sendCh:
		case <-p.denied.ch:
			p.mu.Lock()
			p.checkDenied()
			p.mu.Unlock()
		case <-timer.C:
		case <-ctx.Done():
		}
	}
}

// sendState is what the sender reuses from one message to the next.
type sendState struct {
	retry backoff.Backoff
	hdr   nats.Header
	id    []string
	msg   nats.Msg
	// recheck: a message found no stream; read the stream's subjects
	// before sending again.
	recheck bool
}

// step does one thing: finish an ended batch, seal a broken one, end an
// idle one, or publish the next item. It returns how long to wait for
// something to change (negative: step again at once), or an error to report
// and retry after a back-off.
func (p *Pipeline) step(ctx context.Context, s *sendState) (time.Duration, error) {
	if s.recheck {
		if err := p.readStream(ctx); err != nil {
			return 0, err
		}
		s.recheck = false
	}
	p.mu.Lock()
	b := &p.b
	now := time.Now()
	switch {
	case b.ended:
		retry, recheck := p.finishBatch()
		p.mu.Unlock()
		if retry != nil {
			s.recheck = recheck
			return 0, fmt.Errorf("resending from the first unstored event: %w", retry)
		}
		s.retry.Reset()
		return -1, nil
	case b.open && b.n == 0 && b.broken != nil:
		cause := b.broken // its first publish failed: nothing to seal
		*b = batch{}
		p.mu.Unlock()
		return 0, cause
	case b.needsSeal(now, p.cfg.AckTimeout):
		cause := b.broken
		if cause == nil {
			cause = fmt.Errorf("no word from JetStream on a batch for %v", p.cfg.AckTimeout)
		}
		subject, reply := b.first, b.reply(b.n+1, opEOB)
		b.committed, b.sealedAt = true, now
		p.mu.Unlock()
		p.report(fmt.Errorf("sealing the batch to send its unstored events again: %w", cause))
		if err := p.nc.PublishRequest(subject, reply, nil); err != nil {
			p.mu.Lock()
			b.sealedAt = time.Time{} // seal again after the back-off
			p.mu.Unlock()
			return 0, fmt.Errorf("seal a batch: %w", err)
		}
		return -1, nil
	case b.open && b.committed:
		since := b.heard
		if !b.sealedAt.IsZero() {
			since = b.sealedAt
		}
		p.mu.Unlock()
		return max(p.cfg.AckTimeout-now.Sub(since), time.Millisecond), nil
	case p.w.sent == p.sendEnd():
		if !b.open || b.n == 0 {
			*b = batch{} // marks and local dead letters only: nothing to commit
			p.mu.Unlock()
			return time.Hour, nil
		}
		if wait := p.commitWait(now); wait > 0 {
			p.mu.Unlock()
			return wait, nil
		}
		// Nothing more to send: commit what the batch has.
		subject, reply := b.first, b.reply(b.n+1, opEOB)
		b.committed = true
		if b.n == b.acked {
			b.heard = now // the server owes an answer from now on
		}
		p.mu.Unlock()
		if err := p.nc.PublishRequest(subject, reply, nil); err != nil {
			p.breakBatch(err)
		}
		return -1, nil
	case b.open && b.n-b.acked >= uint32(max(b.flow, 1))*maxUnacked:
		heard := b.heard
		p.mu.Unlock()
		return max(p.cfg.AckTimeout-now.Sub(heard), time.Millisecond), nil
	}
	pos := p.w.sent
	it := p.w.items[p.w.slot(pos)]
	filter, filterAt := p.filter, p.filterAt
	p.mu.Unlock()

	dead, err := p.precheck(ctx, it.Event, filter, filterAt)
	if err != nil {
		return 0, err
	}
	if it.Event == nil || dead != nil {
		p.skip(pos, dead)
		return -1, nil
	}
	p.publish(s, pos, it.Event)
	return -1, nil
}

// commitWait is how much longer the open batch, which the sender has caught
// up with, stays open for more events (see batch.linger); zero or less:
// commit it now. Nothing lingers in atomic mode (a transaction is committed
// with its last message), while the window is full (nothing can join the
// batch before it is acked) or while someone waits for the window to drain.
// Lock held.
func (p *Pipeline) commitWait(now time.Time) time.Duration {
	if p.cfg.AtomicTransactions || p.w.blocked || len(p.waiters) > 0 {
		return 0
	}
	return p.b.linger(now, p.cfg.AckTimeout)
}

// skip passes over the item at pos without a message: a mark, or an event
// dead-lettered without being sent.
func (p *Pipeline) skip(pos uint64, dead error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.w.slot(pos)
	p.w.items[i].DeadLetter, p.w.seq[i] = dead, 0
	p.w.sent++
	p.advance()
}

// publish sends the event at window position pos as the next message of the
// open batch (opening one if needed).
func (p *Pipeline) publish(s *sendState, pos uint64, ev *flow.Event) {
	p.mu.Lock()
	b := &p.b
	if !b.open {
		*b = newBatch(p.inbox)
	}
	// The sequence is taken before the publish: an answer may come back
	// before this goroutine has the lock again.
	prev := *b
	seq := b.n + 1
	op := opAppend
	if seq == 1 {
		op = opStart
	}
	// The ordinary way commits when the batch is full, or after it has gone
	// commitLinger without a message (step); atomic mode hands over whole
	// transactions and commits on the last message it was given.
	commit := seq >= uint32(p.cfg.MaxBatch) || (p.cfg.AtomicTransactions && p.lastMessage(pos))
	if commit {
		op = opCommit
	}
	now := time.Now()
	if seq == 1 || b.n == b.acked {
		b.heard = now // the server owes an answer from now on
	}
	b.n, b.committed, b.lastSent = seq, commit, now
	if seq == 1 {
		b.first = ev.Subject
	}
	s.msg = nats.Msg{Subject: ev.Subject, Reply: b.reply(seq, op), Data: ev.Payload}
	p.mu.Unlock()

	s.msg.Header = p.header(s, ev, now)
	p.fitDiagnostics(&s.msg)
	err := p.nc.PublishMsg(&s.msg)
	switch {
	case err != nil && permanentSendErr(err):
		// Refused before it left: the batch goes on without it.
		p.mu.Lock()
		b.n, b.first, b.committed, b.heard = prev.n, prev.first, prev.committed, prev.heard
		p.mu.Unlock()
		p.skip(pos, fmt.Errorf("publish refused: %w", err))
	case err != nil:
		// Sealing the batch finds out what the server has; the event is
		// sent again in the next batch.
		p.breakBatch(err)
	default:
		p.mu.Lock()
		i := p.w.slot(pos)
		p.w.items[i].DeadLetter, p.w.seq[i], p.w.sentAt[i] = nil, seq, now
		p.w.sent++
		p.advance()
		p.mu.Unlock()
	}
}

// sendEnd is the window position the ordinary sender stops at: everything
// added, or in atomic mode the end of the transactions it was handed. Lock
// held.
func (p *Pipeline) sendEnd() uint64 {
	if !p.cfg.AtomicTransactions || p.fastToMark {
		return p.w.added
	}
	return p.fastEnd
}

// lastMessage reports whether nothing after position pos can become a
// message yet: the rest of the window holds only marks and events already
// known to be dead letters. Lock held.
func (p *Pipeline) lastMessage(pos uint64) bool {
	for next, end := pos+1, p.sendEnd(); next < end; next++ {
		if ev := p.w.items[p.w.slot(next)].Event; ev != nil && ev.Problem == nil {
			return false
		}
	}
	return true
}

// header builds ev's headers into the map the sender reuses: the row's own
// headers, Nats-Msg-Id and, when asked for, the relay's diagnostic ones
// (now is the hand-off to NATS). A caller that adds headers of its own
// calls fitDiagnostics after them.
func (p *Pipeline) header(s *sendState, ev *flow.Event, now time.Time) nats.Header {
	h := s.hdr
	clear(h)
	for k, v := range ev.Headers {
		h[k] = v
	}
	s.id[0] = ev.EventIDString()
	h[jetstream.MsgIDHeader] = s.id
	if p.cfg.DiagnosticHeaders {
		h[HeaderOutboxID] = []string{strconv.FormatInt(ev.ID, 10)}
		if ev.CommitLSN != 0 {
			h[HeaderCommitLSN] = []string{ev.CommitLSN.String()}
		}
		if tr := ev.Trace; !tr.Received.IsZero() { // streamed, not backfilled
			stamp(h, HeaderCommitTime, tr.Committed)
			stamp(h, HeaderSent, tr.Sent)
			stamp(h, HeaderReceived, tr.Received)
			stamp(h, HeaderPublished, now)
		}
	}
	return h
}

func stamp(h nats.Header, name string, at time.Time) {
	if !at.IsZero() {
		h[name] = []string{at.UTC().Format(time.RFC3339Nano)}
	}
}

// fitDiagnostics leaves the diagnostic headers off a message they would push
// over the server's max_payload: diagnostics must not decide delivery, and a
// message too large for the server is dead-lettered.
func (p *Pipeline) fitDiagnostics(m *nats.Msg) {
	if !p.cfg.DiagnosticHeaders {
		return
	}
	if max := p.nc.MaxPayload(); max > 0 && int64(headerLen(m.Header)+len(m.Data)) > max {
		for _, name := range [...]string{HeaderOutboxID, HeaderCommitLSN, HeaderCommitTime, HeaderSent, HeaderReceived, HeaderPublished} {
			delete(m.Header, name)
		}
	}
}

// headerLen is the size of h on the wire: "NATS/1.0\r\n", a "Name: value\r\n"
// line per value, and a closing "\r\n".
func headerLen(h nats.Header) int {
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}

// breakBatch marks the open batch for sealing after a failed publish.
func (p *Pipeline) breakBatch(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.b.open && p.b.broken == nil {
		p.b.broken = fmt.Errorf("publish: %w", err)
	}
}

// checkDenied breaks the open batch when the server refused a subject one
// of its unacked messages was published to: that message was dropped, and
// no ack will come for it. Lock held.
func (p *Pipeline) checkDenied() {
	b := &p.b
	if !b.open || b.ended || b.broken != nil {
		return
	}
	for pos := p.w.resolved; pos < p.w.sent; pos++ {
		i := p.w.slot(pos)
		if ev := p.w.items[i].Event; ev != nil && p.w.seq[i] > b.acked {
			err := p.denied.since(ev.Subject, p.w.sentAt[i])
			switch {
			case err == nil:
				continue
			case p.w.seq[i] == 1:
				// The batch never started: nothing of it can be stored,
				// and an end-of-batch on that subject would be dropped too.
				b.ended, b.count, b.cause = true, 0, err
			default:
				b.broken = err
			}
			signal(p.sendCh)
			return
		}
	}
}

// precheck decides what can be known without sending: an event that cannot
// be published (bad row, subject no stream captures) is a dead letter. It
// re-reads the stream's subjects, at most every SubjectsRefresh, before
// dead-lettering on them; a failed read is an error to retry, so nothing is
// dead-lettered on stale information.
func (p *Pipeline) precheck(ctx context.Context, ev *flow.Event, filter subjectFilter, filterAt time.Time) (dead error, err error) {
	switch {
	case ev == nil:
		return nil, nil
	case ev.Problem != nil:
		return ev.Problem, nil
	case filter.matches(ev.Subject):
		return nil, nil
	case time.Since(filterAt) >= SubjectsRefresh:
		if err := p.readStream(ctx); err != nil {
			return nil, err
		}
		p.mu.Lock()
		filter = p.filter
		p.mu.Unlock()
		if filter.matches(ev.Subject) {
			return nil, nil
		}
	}
	return fmt.Errorf("no stream captures subject %q: stream %s takes %v (add the subject to the stream, then replay the dead letter)", ev.Subject, p.cfg.Stream, []string(filter)), nil
}

// SubjectsRefresh bounds how often an unmatched subject re-reads the
// stream's subjects: an operator who adds a subject with `stream ensure`
// should not have to restart the relay, but a burst of unmatched events
// must not turn into a burst of stream info requests. An event refused on
// its subject less than this after the subject was added may have been
// judged on the list from before.
const SubjectsRefresh = 2 * time.Second

// finishBatch resolves what an ended batch stored and closes it. If the
// batch ended short, its first unstored message is dead-lettered when it can
// never be stored (a permanent refusal, a subject the relay may not publish
// to); otherwise retry says why it was not stored, and recheck whether the
// stream's subjects must be read again. Either way the window rewinds to
// the first unresolved item: the next batch sends it and what follows
// again. Lock held.
func (p *Pipeline) finishBatch() (retry error, recheck bool) {
	b := &p.b
	count := b.count
	if count < 0 {
		count = int64(b.acked) // the server forgot the batch: only acked messages are sure
	}
	b.acked = uint32(count)
	p.advance()
	if count < int64(b.n) {
		var refusal error
		if b.refused == b.acked+1 {
			refusal = b.refusedErr
		}
		retry = firstErr(refusal, b.cause, b.broken, errors.New("JetStream ended a batch early"))
		if p.w.resolved < p.w.sent {
			i := p.w.slot(p.w.resolved)
			it := &p.w.items[i]
			if denied := p.denied.since(it.Event.Subject, p.w.sentAt[i]); denied != nil {
				it.DeadLetter = denied
			} else if refusal != nil && permanentAckErr(refusal) {
				it.DeadLetter = fmt.Errorf("JetStream refused the event: %w", refusal)
			}
			if it.DeadLetter != nil {
				p.w.seq[i], retry = 0, nil
				p.advance() // resolves the dead letter
			}
		}
	}
	recheck = b.recheck
	p.w.sent = p.w.resolved
	*b = batch{}
	if retry != nil {
		p.cfg.Counters.Recoveries.Add(1)
	}
	return retry, recheck
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
