// Package publish moves events into JetStream in order, in fast-ingest
// batches (ADR-50; see batch.go), inside a window bounded by count and
// bytes, and resolves them in order: stored, or dead-lettered when JetStream
// refuses one for good.
//
// Order holds without assuming the relay is the stream's only publisher.
// One batch is open at a time, and its messages go out in window order on
// one connection. In gap mode "fail" the stream leader stores a batch's
// messages in batch order and ends the batch at the first it cannot store,
// so what a batch leaves in the stream is always a prefix of it; its PubAck
// says how long. The next batch starts only after the server has ended the
// previous one (its PubAck, or its word that it no longer knows the batch),
// and an ended batch stores nothing more; the next batch begins with the
// first event that is not stored. Events of the broken batch that were
// stored after all are skipped by JetStream as duplicates (Nats-Msg-Id =
// event id, inside the duplicate window). Hence batch k+1 can never land
// ahead of an unstored event of batch k, and other publishers' messages in
// between change nothing.
//
// Under Config.AtomicTransactions batches are JetStream atomic batches of
// whole transactions instead (atomic.go), under the same discipline: one
// open at a time, the next only once the last one's outcome is known.
package publish

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/flow"
)

// Header names the relay sets when Config.DiagnosticHeaders is on. The
// times (RFC 3339, UTC, nanoseconds) give every stage of an event's trip
// an address: its transaction's commit (PostgreSQL's timestamp), the
// walsender's send, the relay's receipt, and its hand-off to the NATS
// connection; JetStream's stored timestamp and the consumer's receipt
// follow. The four times are on events streamed from the slot only, not
// on backfilled ones.
const (
	HeaderOutboxID   = "Cdcrelay-Outbox-Id"
	HeaderCommitLSN  = "Cdcrelay-Commit-Lsn"
	HeaderCommitTime = "Cdcrelay-Commit-Time"
	HeaderSent       = "Cdcrelay-Walsender-Sent"
	HeaderReceived   = "Cdcrelay-Received"
	HeaderPublished  = "Cdcrelay-Published"
)

// Pipeline publishes items in order through one NATS connection. Submit,
// Resolved and Release may be called from different goroutines; each is meant
// for one caller at a time (the slot reader submits, the checkpoint takes).
type Pipeline struct {
	cfg   Config
	nc    *nats.Conn
	js    jetstream.JetStream
	inbox string // the server answers batches under inbox.>

	mu       sync.Mutex
	w        *window
	b        batch
	filter   subjectFilter
	filterAt time.Time // when filter was read
	stats    Stats

	// Wake-ups, each a 1-buffered channel so a signal is never lost and
	// never blocks the signaller.
	roomCh, sendCh, resolvedCh chan struct{}
	// waiters are closed once released reaches their target (Drained,
	// Settled); lastMark is the window position after the last mark.
	waiters  []waiter
	lastMark uint64
	// unsent counts events submitted since the sender was last woken.
	unsent int

	// Atomic mode (see atomic.go): the ordinary sender publishes positions
	// [sent, fastEnd), or up to the next mark when fastToMark.
	fastEnd    uint64
	fastToMark bool

	denied         *denials
	restoreErrHook func()
	sub            *nats.Subscription

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Stats are the pipeline's state now, for metrics, readiness and status;
// the event counts are in Counters.
type Stats struct {
	InFlight  int
	InFlightB int64
	// StalledSince is when publishing last stopped making progress on a
	// failure that is being retried, and StallCause why; zero while
	// publishing goes well.
	StalledSince time.Time
	StallCause   string
}

// New creates a pipeline on a NATS connection. The connection should be
// made with nats.ReconnectBufSize(-1): publishes during a disconnect must
// fail at once rather than be flushed, stale, after reconnecting.
func New(nc *nats.Conn, cfg Config) (*Pipeline, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("publish config: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream client: %w", err)
	}
	return &Pipeline{
		cfg:        cfg,
		nc:         nc,
		js:         js,
		inbox:      nc.NewInbox(),
		w:          newWindow(cfg.MaxInFlight, cfg.MaxInFlightBytes),
		roomCh:     make(chan struct{}, 1),
		sendCh:     make(chan struct{}, 1),
		resolvedCh: make(chan struct{}, 1),
		denied:     newDenials(),
	}, nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Start checks the server and the stream (it must exist and allow batched
// publishing), then starts publishing. A missing or unfit stream stops
// start-up with a clear error.
func (p *Pipeline) Start(ctx context.Context) error {
	// A reconnect may have moved the connection to another server of the
	// cluster since start-up.
	if err := CheckServer(p.nc); err != nil {
		return err
	}
	if err := p.readStream(ctx); err != nil {
		return err
	}
	sub, err := p.nc.Subscribe(p.inbox+".>", p.hear)
	if err != nil {
		return fmt.Errorf("subscribe to batch acks: %w", err)
	}
	// Acks are few (one per flow step), but never drop one.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("batch ack subscription: %w", err)
	}
	p.sub = sub
	p.restoreErrHook = p.denied.watch(p.nc)
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(1)
	step := p.step
	if p.cfg.AtomicTransactions {
		a := &atomicState{}
		step = func(ctx context.Context, s *sendState) (time.Duration, error) { return p.atomicStep(ctx, s, a) }
	}
	go func() { defer p.wg.Done(); p.sender(ctx, step) }()
	return nil
}

// Close stops the pipeline's goroutine and waits for it. Items still in the
// window are abandoned: they were not flipped, so they come again; the open
// batch, if any, times out on the server.
func (p *Pipeline) Close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	if p.sub != nil {
		_ = p.sub.Unsubscribe()
	}
	if p.restoreErrHook != nil {
		p.restoreErrHook()
	}
}

// readStream reads the stream's subjects, checking that it allows batches.
func (p *Pipeline) readStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	filter, err := readStream(ctx, p.js, p.cfg.Stream, p.cfg.AtomicTransactions)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.filter, p.filterAt = filter, time.Now()
	p.mu.Unlock()
	return nil
}

// hear takes the server's answers about batches (on the subscription's
// goroutine).
func (p *Pipeline) hear(m *nats.Msg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.b.hear(m, p.inbox, time.Now()) {
		p.advance()
		signal(p.sendCh)
	}
}

// handOverEvery is how many events Submit adds before it wakes the sender
// even though no mark came: a large transaction streams on while it is read.
const handOverEvery = 64

// Submit adds an item to the window, waiting for room until deadline (zero:
// no deadline) or ctx ends. Items are published in the order submitted.
//
// The sender is woken at a mark (a transaction's end), every handOverEvery
// events and by Flush, not at every event: a transaction's events arrive
// together, and waking the sender for each of them cost a goroutine switch
// per event, which on a busy machine made events trickle out one at a time.
func (p *Pipeline) Submit(ctx context.Context, it flow.Item, deadline time.Time) error {
	size := it.Size()
	var timer <-chan time.Time
	for {
		p.mu.Lock()
		if p.w.fits(size) {
			p.w.add(it)
			if p.fastToMark && it.Event == nil {
				p.fastEnd, p.fastToMark = p.w.added, false
			}
			if it.Event == nil {
				p.lastMark = p.w.added
			}
			p.unsent++
			wake := it.Event == nil || p.unsent >= handOverEvery
			if wake {
				p.unsent = 0
			}
			p.mu.Unlock()
			if wake {
				signal(p.sendCh)
			}
			return nil
		}
		p.w.need = size
		if !p.w.blocked {
			p.w.blocked = true
			signal(p.sendCh)
		}
		p.mu.Unlock()
		if timer == nil && !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-p.roomCh:
		case <-timer:
			return flow.ErrFull
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Flush hands everything submitted so far to the sender now (see Submit):
// for a caller whose last items are events, such as a backfill.
func (p *Pipeline) Flush() {
	p.mu.Lock()
	p.wakeSender()
	p.mu.Unlock()
}

// wakeSender hands everything submitted so far to the sender. Lock held.
func (p *Pipeline) wakeSender() {
	p.unsent = 0
	signal(p.sendCh)
}

// Resolved waits until at least one item is resolved (stored or
// dead-lettered) and not yet taken, then appends resolved items in order to
// buf, up to its capacity. The caller flips them and then calls Release.
func (p *Pipeline) Resolved(ctx context.Context, buf []flow.Item) ([]flow.Item, error) {
	for {
		p.mu.Lock()
		buf = p.w.take(buf)
		p.mu.Unlock()
		if len(buf) > 0 {
			return buf, nil
		}
		select {
		case <-p.resolvedCh:
		case <-ctx.Done():
			return buf, ctx.Err()
		}
	}
}

// Release frees the n oldest taken items, making room in the window.
func (p *Pipeline) Release(n int) {
	p.mu.Lock()
	p.w.release(n)
	kept := p.waiters[:0]
	for _, w := range p.waiters {
		if p.w.released >= w.target {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	p.waiters = kept
	blocked := p.w.blocked
	p.mu.Unlock()
	signal(p.roomCh)
	if blocked {
		// The room may still be too little for the waiting Submit, and in
		// atomic mode a transaction that fills the window alone is handed
		// over only once everything before it is released: the sender
		// must look again, since no Submit or ack will wake it.
		signal(p.sendCh)
	}
}

// Full reports whether a Submit waits for room now.
func (p *Pipeline) Full() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w.blocked
}

// Idle reports whether nothing is in the window now: every submitted item
// has been released.
func (p *Pipeline) Idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, _ := p.w.inFlight()
	return n == 0
}

// waiter is a channel to close once the window has released target items.
type waiter struct {
	target uint64
	ch     chan struct{}
}

// Drained returns a channel that is closed once everything submitted before
// the call is acked, flipped and released (at once if it is). It hands what
// was submitted to the sender (Flush): a caller that waits for the window
// to empty may have stopped submitting in the middle of a transaction,
// without a mark.
func (p *Pipeline) Drained() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wakeSender()
	return p.releasedTo(p.w.added)
}

// Settled returns a channel that is closed once everything up to the last
// mark submitted is released: all that a slot position can depend on. The
// events of a transaction whose end never came are not waited for (in
// atomic mode they are never sent: a transaction is sent whole).
func (p *Pipeline) Settled() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wakeSender()
	return p.releasedTo(p.lastMark)
}

// releasedTo returns a channel closed once target items are released. Lock
// held.
func (p *Pipeline) releasedTo(target uint64) <-chan struct{} {
	ch := make(chan struct{})
	if p.w.released >= target {
		close(ch)
		return ch
	}
	p.waiters = append(p.waiters, waiter{target: target, ch: ch})
	return ch
}

// Stats returns a snapshot of the pipeline's counters.
func (p *Pipeline) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.InFlight, s.InFlightB = p.w.inFlight()
	return s
}

// OldestPending is the commit time of the oldest transaction submitted and
// not yet released (zero when there is none or it is unknown).
func (p *Pipeline) OldestPending() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w.oldestCommit()
}

// advance resolves, in order, the items the server has confirmed: messages
// of the open batch up to its acked sequence, and the marks and local dead
// letters between them. Lock held.
func (p *Pipeline) advance() {
	from := p.w.resolved
	var now time.Time
	for p.w.resolved < p.w.sent {
		i := p.w.slot(p.w.resolved)
		it := &p.w.items[i]
		switch seq := p.w.seq[i]; {
		case seq > p.b.acked:
			p.finishAdvance(from)
			return
		case seq > 0:
			if p.b.duplicate && seq == 1 {
				p.cfg.Counters.Duplicates.Add(1)
			} else {
				p.cfg.Counters.Published.Add(1)
			}
			if p.cfg.OnAck != nil {
				if now.IsZero() {
					now = time.Now()
				}
				p.cfg.OnAck(now.Sub(p.w.sentAt[i]))
			}
		case it.DeadLetter != nil:
			p.cfg.Counters.DeadLetters.Add(1)
		}
		p.w.resolved++
	}
	p.finishAdvance(from)
}

func (p *Pipeline) finishAdvance(from uint64) {
	if p.w.resolved != from {
		p.stats.StalledSince, p.stats.StallCause = time.Time{}, ""
		signal(p.resolvedCh)
	}
}

// Counters are the event counts: Config.Counters, or the pipeline's own.
func (p *Pipeline) Counters() *Counters { return p.cfg.Counters }

func (p *Pipeline) report(err error) {
	p.mu.Lock()
	if p.stats.StalledSince.IsZero() {
		p.stats.StalledSince = time.Now()
	}
	p.stats.StallCause = err.Error()
	p.mu.Unlock()
	if p.cfg.OnRetry != nil {
		p.cfg.OnRetry(err)
	}
}
