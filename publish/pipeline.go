// Package publish moves events into JetStream with ack pipelining: many
// publishes in flight inside a window bounded by count and bytes, acks
// consumed in order, and on any failure a recovery that resends from the
// first unacked event.
//
// Order is kept across failures by chaining: every publish carries
// Nats-Expected-Last-Msg-Id, the id of the event sent before it, so JetStream
// stores an event only if its predecessor is the stream's last message. The
// set of stored events is therefore always a prefix of what was sent, and a
// resend from the first unacked event cannot land behind a later one.
// JetStream checks Nats-Msg-Id duplicates before that expectation, so a resent
// event that was in fact stored is acked as a duplicate, not refused. The
// chain assumes the relay is the stream's only publisher; a foreign publish
// only costs a recovery.
package publish

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/decode"
)

// Header names the relay sets on every message.
const (
	HeaderOutboxID  = "Cdcrelay-Outbox-Id"
	HeaderCommitLSN = "Cdcrelay-Commit-Lsn"
)

// ErrFull is returned by Submit when the window stayed full until the deadline.
var ErrFull = errors.New("in-flight window full")

// Pipeline publishes items in order through one JetStream client. Submit,
// Resolved and Release may be called from different goroutines; each is meant
// for one caller at a time (the slot reader submits, the checkpoint takes).
type Pipeline struct {
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	opts []jetstream.PublishOpt

	mu       sync.Mutex
	w        *window
	paused   bool   // a recovery is under way: the sender must not send
	parked   bool   // the sender has seen the pause and stopped
	sendErr  error  // a transient error the sender hit; the acker recovers
	lastID   string // Nats-Msg-Id the next publish expects as the stream's last
	filter   subjectFilter
	filterAt time.Time // when filter was read
	stats    Stats

	// Wake-ups, each a 1-buffered channel so a signal is never lost and
	// never blocks the signaller.
	roomCh, sendCh, ackCh, resolvedCh, parkedCh chan struct{}

	denied         *denials
	restoreErrHook func()

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Stats are running counts for metrics and status.
type Stats struct {
	Published   uint64 // acked as newly stored
	Duplicates  uint64 // acked as duplicates of a stored message
	DeadLetters uint64
	Recoveries  uint64
	InFlight    int
	InFlightB   int64
}

// New creates a pipeline on a NATS connection. The connection should be
// made with nats.ReconnectBufSize(-1): publishes during a disconnect must
// fail at once rather than be flushed, stale, after reconnecting.
func New(nc *nats.Conn, cfg Config) (*Pipeline, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("publish config: %w", err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight+1),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream client: %w", err)
	}
	return &Pipeline{
		cfg:        cfg,
		nc:         nc,
		js:         js,
		opts:       []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)},
		w:          newWindow(cfg.MaxInFlight, cfg.MaxInFlightBytes),
		roomCh:     make(chan struct{}, 1),
		sendCh:     make(chan struct{}, 1),
		ackCh:      make(chan struct{}, 1),
		resolvedCh: make(chan struct{}, 1),
		parkedCh:   make(chan struct{}, 1),
		denied:     newDenials(),
	}, nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Start reads the stream's subjects and last message id, then starts the
// sender and the acker. It fails if the stream cannot be read, so that a
// missing stream stops start-up with a clear error.
func (p *Pipeline) Start(ctx context.Context) error {
	// A reconnect may have moved the connection to another server of the
	// cluster since start-up.
	if err := CheckServer(p.nc); err != nil {
		return err
	}
	filter, last, err := p.streamState(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.filter, p.filterAt, p.lastID = filter, time.Now(), last
	p.mu.Unlock()
	p.restoreErrHook = p.denied.watch(p.nc)
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.sender(ctx) }()
	go func() { defer p.wg.Done(); p.acker(ctx) }()
	return nil
}

// Close stops the pipeline's goroutines and waits for them. Items still in
// the window are abandoned: they were not flipped, so they come again.
func (p *Pipeline) Close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	if p.restoreErrHook != nil {
		p.restoreErrHook()
	}
}

// Submit adds an item to the window, waiting for room until deadline (zero:
// no deadline) or ctx ends. Items are published in the order submitted.
func (p *Pipeline) Submit(ctx context.Context, it Item, deadline time.Time) error {
	size := it.size()
	var timer <-chan time.Time
	for {
		p.mu.Lock()
		if p.w.fits(size) {
			p.w.add(it)
			p.mu.Unlock()
			signal(p.sendCh)
			return nil
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
			return ErrFull
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Resolved waits until at least one item is resolved (acked or
// dead-lettered) and not yet taken, then appends resolved items in order to
// buf, up to its capacity. The caller flips them and then calls Release.
func (p *Pipeline) Resolved(ctx context.Context, buf []Item) ([]Item, error) {
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
	p.mu.Unlock()
	signal(p.roomCh)
}

// Idle reports whether nothing is in the window: every submitted item has
// been released.
func (p *Pipeline) Idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, _ := p.w.inFlight()
	return n == 0
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

// message builds the NATS message for an event that expects `last` as the
// stream's last message id.
func message(ev *decode.Event, id, last string) *nats.Msg {
	h := make(nats.Header, len(ev.Headers)+4)
	for k, v := range ev.Headers {
		h[k] = v
	}
	h[jetstream.MsgIDHeader] = []string{id}
	if last != "" {
		h[jetstream.ExpectedLastMsgIDHeader] = []string{last}
	}
	h[HeaderOutboxID] = []string{strconv.FormatInt(ev.ID, 10)}
	if ev.CommitLSN != 0 {
		h[HeaderCommitLSN] = []string{ev.CommitLSN.String()}
	}
	return &nats.Msg{Subject: ev.Subject, Data: ev.Payload, Header: h}
}
