package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Atomic batch publishing (ADR-50, nats-server ≥ 2.12, Nats-Msg-Id inside
// atomic batches from 2.12.1; stream option allow_atomic), as nats-server's
// stream.go (processJetStreamBatchMsg) implements it. Every message carries
// Nats-Batch-Id and Nats-Batch-Sequence; the last also Nats-Batch-Commit: 1.
// The server stages the messages and, on the commit, checks them all and
// stores all of them or none: a gap in the sequence (a message lost on the
// way, a server restart) fails the commit as incomplete, a refused message
// fails the whole batch, and so does a Nats-Msg-Id the stream has already
// stored (10201): inside an atomic batch a duplicate is an error, not a skip.
//
// Under Config.AtomicTransactions the window is cut at transaction ends
// (marks). A batch holds whole transactions, at most AtomicMaxBatch events;
// one batch is open at a time and the next is sent only when the last one's
// outcome is known, so batches are stored in window order, and a batch whose
// outcome is unknown (no answer in time) is sent again, under a new batch id,
// before anything after it.
//
// A batch sent again may have been stored already (its commit landed but
// the answer was lost, or the relay restarted and the slot sends its events
// again). Its commit then fails with 10201, and, because every batch was all
// or nothing, the stored part is a run of whole transactions at its start.
// A batch of several transactions that fails so is sent again one
// transaction per batch; a lone transaction that fails so goes the ordinary
// way (a fast batch), which skips what is stored: under atomic publishing
// that is all of it, so nothing is stored twice, and every retry makes
// progress (no loop).
//
// The ordinary way also takes a transaction that cannot be atomic: larger
// than AtomicMaxBatch or the window, or holding an event that is
// dead-lettered. Such transactions are counted (Counters.NotAtomic) and
// reported (Config.OnNotAtomic). Backfilled events (flow.Item.Backfill) go the
// ordinary way uncounted: their transactions are not known.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"

	codeAtomicDuplicate = 10201 // JSAtomicPublishContainsDuplicateMessageErr
	codeAtomicTooLarge  = 10199 // JSAtomicPublishTooLargeBatchErrF
	// codeAtomicHeader is JSAtomicPublishUnsupportedHeaderBatchErr: a row
	// written around the outbox's CHECK with Nats-Expected-Last-Msg-Id.
	codeAtomicHeader = 10177
)

// atomicState is what the atomic sender keeps between steps.
type atomicState struct {
	// splitEnd: up to this window position, batches hold one transaction
	// (a batch of several failed on something one of them holds).
	splitEnd uint64
}

// group is the run of the window the next atomic batch covers.
type group struct {
	end    uint64 // window position after the group's last mark
	events int
	txs    int
}

// fastActive reports whether the ordinary sender has work handed to it.
// Lock held.
func (p *Pipeline) fastActive() bool {
	return p.b.open || p.fastToMark || p.w.sent < p.fastEnd
}

// atomicStep sends the next atomic batch, or lets the ordinary sender take
// a step on a transaction handed to it.
func (p *Pipeline) atomicStep(ctx context.Context, s *sendState, a *atomicState) (time.Duration, error) {
	p.mu.Lock()
	if p.fastActive() {
		p.mu.Unlock()
		wait, err := p.step(ctx, s)
		p.mu.Lock()
		if err == nil && wait > 0 && !p.fastActive() {
			wait = -1 // its transactions are done: back to atomic batches
		}
		p.mu.Unlock()
		return wait, err
	}
	g, ordinary, reason := p.plan(a)
	switch {
	case ordinary:
		p.handOver(g, reason, reason != "")
		p.mu.Unlock()
		return -1, nil
	case g.end == p.w.sent:
		p.mu.Unlock()
		return time.Hour, nil // wait for a transaction's end (Submit signals)
	case g.events == 0:
		// Marks only: nothing to send.
		p.resolveAtomic(g.end, time.Time{})
		p.mu.Unlock()
		return -1, nil
	}
	start := p.w.sent
	p.mu.Unlock()

	sentAt := time.Now()
	err := p.sendAtomic(ctx, s, start, g)
	if err != nil && !refusedForGood(err) {
		// A message the relay may not publish never reaches the stream:
		// the batch fails as incomplete however often it is sent.
		if denied := p.deniedIn(start, g.end, sentAt); denied != nil {
			err = denied
		}
	}
	switch {
	case err == nil:
		s.retry.Reset()
		return -1, nil
	case !refusedForGood(err):
		return 0, fmt.Errorf("atomic batch of %d transactions (%d events): %w", g.txs, g.events, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg.Counters.Recoveries.Add(1)
	switch {
	case g.txs > 1:
		// What one transaction holds fails them all: one at a time.
		a.splitEnd = g.end
	case isDuplicate(err):
		// Stored already (all of it, unless it was once published the
		// ordinary way): the ordinary way skips what is stored.
		p.handOver(g, "", false)
	default:
		p.handOver(g, fmt.Sprintf("the server refused it as an atomic batch: %v", err), true)
	}
	return -1, nil
}

// refusedForGood reports whether an atomic batch failed on something it
// holds, so that sending it again as it is would fail again.
func refusedForGood(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case codeAtomicDuplicate, codeAtomicTooLarge, codeAtomicHeader:
			return true
		}
		return permanentAckErr(apiErr)
	}
	var denied *PermissionError
	return permanentSendErr(err) || errors.As(err, &denied)
}

// deniedIn returns the permission refusal, since sentAt, of an event
// between start and end, if there is one.
func (p *Pipeline) deniedIn(start, end uint64, sentAt time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pos := start; pos < end; pos++ {
		if ev := p.w.items[p.w.slot(pos)].Event; ev != nil {
			if err := p.denied.since(ev.Subject, sentAt); err != nil {
				return err
			}
		}
	}
	return nil
}

func isDuplicate(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == codeAtomicDuplicate
}

// plan cuts the next group from the window at sent: whole transactions, at
// most AtomicMaxBatch events, one transaction while splitting. ordinary says
// the first transaction must go the ordinary way, and why; g.end == sent
// that nothing can be sent yet. Lock held.
func (p *Pipeline) plan(a *atomicState) (g group, ordinary bool, reason string) {
	g.end = p.w.sent
	if backfill := p.backfillRun(); backfill > p.w.sent {
		return group{end: backfill}, true, ""
	}
	events, bad := 0, ""
	for pos := p.w.sent; pos < p.w.added; pos++ {
		it := &p.w.items[p.w.slot(pos)]
		if it.Event == nil { // a transaction's end (or a heartbeat)
			if g.txs == 0 && bad != "" {
				return group{end: pos + 1, events: events, txs: 1}, true, bad
			}
			if bad != "" {
				return g, false, "" // send what precedes it first
			}
			g.end, g.events = pos+1, g.events+events
			if events > 0 {
				g.txs++
			}
			events = 0
			if g.txs > 0 && pos+1 <= a.splitEnd {
				return g, false, ""
			}
			continue
		}
		events++
		if ev := it.Event; bad == "" && (ev.Problem != nil || !p.filter.matches(ev.Subject)) {
			bad = "it holds an event that cannot be published"
		}
		if g.events+events > p.cfg.AtomicMaxBatch {
			if g.txs > 0 {
				return g, false, ""
			}
			return group{end: 0, events: events}, true, fmt.Sprintf("it has more than %d events, the most in one atomic batch", p.cfg.AtomicMaxBatch)
		}
	}
	switch {
	case g.txs == 0 && events > 0 && bad != "":
		return group{events: events}, true, bad
	case g.txs == 0 && events > 0 && p.w.stuck():
		// It fills the window alone: its end can never come in.
		return group{events: events}, true, "it is larger than the in-flight window"
	}
	return g, false, ""
}

// backfillRun is the end of the run of backfilled events at sent (sent
// itself when there is none). Lock held.
func (p *Pipeline) backfillRun() uint64 {
	pos := p.w.sent
	for pos < p.w.added && p.w.items[p.w.slot(pos)].Backfill {
		pos++
	}
	return pos
}

// handOver gives the transaction at sent to the ordinary sender, up to g.end
// or, when zero, up to its mark; notAtomic counts and reports it. Lock held.
func (p *Pipeline) handOver(g group, reason string, notAtomic bool) {
	p.fastEnd = g.end
	if g.end == 0 {
		p.fastToMark = true
		for pos := p.w.sent; pos < p.w.added; pos++ {
			if p.w.items[p.w.slot(pos)].Event == nil {
				p.fastEnd, p.fastToMark = pos+1, false
				break
			}
		}
	}
	if !notAtomic {
		return
	}
	p.cfg.Counters.NotAtomic.Add(1)
	if p.cfg.OnNotAtomic != nil {
		p.cfg.OnNotAtomic(g.events, reason)
	}
}

// sendAtomic publishes the group as one atomic batch and waits for its
// commit's answer; nil means it is stored.
func (p *Pipeline) sendAtomic(ctx context.Context, s *sendState, start uint64, g group) error {
	// Unique across publishers: the server knows batches by id alone.
	id := nuid.Next()
	seq, sentAt := 0, time.Now()
	for pos := start; pos < g.end; pos++ {
		p.mu.Lock()
		ev := p.w.items[p.w.slot(pos)].Event
		p.mu.Unlock()
		if ev == nil {
			continue
		}
		seq++
		h := p.header(s, ev, sentAt)
		h[hdrBatchID] = []string{id}
		h[hdrBatchSeq] = []string{strconv.Itoa(seq)}
		s.msg = nats.Msg{Subject: ev.Subject, Data: ev.Payload, Header: h}
		if seq < g.events {
			p.fitDiagnostics(&s.msg)
			if err := p.nc.PublishMsg(&s.msg); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			continue
		}
		h[hdrBatchCommit] = []string{"1"}
		p.fitDiagnostics(&s.msg)
		rctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
		reply, err := p.nc.RequestMsgWithContext(rctx, &s.msg)
		cancel()
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if err := commitResult(reply, g.events); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.resolveAtomic(g.end, sentAt)
	p.mu.Unlock()
	return nil
}

// commitResult reads the answer to an atomic batch's commit.
func commitResult(m *nats.Msg, events int) error {
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		Count int                 `json:"count"`
	}
	if len(m.Data) == 0 {
		return fmt.Errorf("commit answered with status %q and no body", m.Header.Get("Status"))
	}
	if err := json.Unmarshal(m.Data, &ack); err != nil {
		return fmt.Errorf("unreadable commit answer %q: %w", m.Data, err)
	}
	if ack.Error != nil {
		return ack.Error
	}
	if ack.Count != events {
		return fmt.Errorf("JetStream stored %d of an atomic batch of %d", ack.Count, events)
	}
	return nil
}

// resolveAtomic resolves every item up to end: an atomic batch is stored.
// Lock held.
func (p *Pipeline) resolveAtomic(end uint64, sentAt time.Time) {
	now := time.Now()
	for p.w.resolved < end {
		if p.w.items[p.w.slot(p.w.resolved)].Event != nil {
			p.cfg.Counters.Published.Add(1)
			if p.cfg.OnAck != nil {
				p.cfg.OnAck(now.Sub(sentAt))
			}
		}
		p.w.resolved++
	}
	p.w.sent = end
	p.stats.StalledSince, p.stats.StallCause = time.Time{}, ""
	signal(p.resolvedCh)
}
