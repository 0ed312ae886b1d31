// Package emit sends observational events to JetStream without ever slowing
// or failing its caller. Emit marshals the event into an Envelope, offers it
// to a bounded queue and returns; one goroutine publishes asynchronously and
// a second awaits the acks. Whatever is not acknowledged is dropped and
// counted by reason in cdcrelay_emitter_dropped_total (queue_full, serialize,
// publish, ack) and in Stats; cdcrelay_emitter_queued_events against
// cdcrelay_emitter_queue_capacity_events shows a queue filling up before it
// drops.
//
// Use it for events that may be lost, such as metrics-like facts and audit
// trails that tolerate gaps. An event that must not be lost belongs in the
// caller's database transaction: outbox.Publish.
//
// There is deliberately no package-level default emitter: the house rule is
// no package-level mutable state, and a constructed *Emitter passed to the
// code that needs it is as short to use. A nil *Emitter accepts and discards
// events, so optional wiring needs no checks.
package emit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/outbox"
)

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("emit: emitter closed")

// Emitter publishes events to JetStream, fire and forget. It is safe for
// concurrent use. Build it with New, call Start once the host is up, and
// Close on the way down.
type Emitter struct {
	cfg    Config
	prefix string // resolved SubjectPrefix plus the separating dot
	log    zerolog.Logger
	count  *counters
	queue  chan event
	queues *queues // the queue gauges, shared with other emitters on the registry

	// mu orders Emit's send on queue against Close's close of it, and
	// against the pipeline being switched on.
	mu      sync.RWMutex
	running bool // the pipeline goroutines are consuming queue
	closed  bool // Close has begun; queue is closed if running was set

	// life serialises the connection state. Network I/O happens outside it.
	life      sync.Mutex
	lifeCtx   context.Context // cancelled by Close: stops retries and attempts
	lifeStop  context.CancelFunc
	wg        sync.WaitGroup // retry loop, connection attempts, pipeline
	nc        *nats.Conn     // set once connected
	retrying  bool
	logged    bool          // the connection failure has been logged
	draining  chan struct{} // closed when Close begins
	abort     chan struct{} // closed when Close's context ends before the drain
	abortOnce sync.Once
}

// event is one marshalled envelope waiting to be published.
type event struct {
	subject string
	data    []byte
}

// New validates cfg and builds an emitter. It does not connect: until Start
// succeeds, emitted events are counted as dropped (reason publish).
func New(cfg Config) (*Emitter, error) {
	cfg = cfg.withDefaults()
	prefix, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	count, err := newCounters(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("emit: %w", err)
	}
	queues, err := newQueues(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("emit: %w", err)
	}
	queue := make(chan event, cfg.QueueSize)
	queues.add(queue)
	lifeCtx, lifeStop := context.WithCancel(context.Background())
	return &Emitter{
		cfg:      cfg,
		prefix:   prefix + ".",
		log:      cfg.Logger,
		count:    count,
		queue:    queue,
		queues:   queues,
		lifeCtx:  lifeCtx,
		lifeStop: lifeStop,
		draining: make(chan struct{}),
		abort:    make(chan struct{}),
	}, nil
}

// Emit publishes v, in an Envelope without a request id, on the subject
// "<prefix>.<name>". It never blocks and never panics; the result says
// whether the event was queued, and callers need not check it: every event
// not delivered is counted as dropped.
func (e *Emitter) Emit(name string, v any) bool { return e.emit("", name, v) }

// EmitWithRequestID is Emit with the envelope's requestId set. An empty
// requestID leaves the field out.
func (e *Emitter) EmitWithRequestID(requestID, name string, v any) bool {
	return e.emit(requestID, name, v)
}

func (e *Emitter) emit(requestID, name string, v any) bool {
	if e == nil {
		return false
	}
	subject := e.prefix + name
	if outbox.ValidateSubject(subject) != nil {
		e.count.drop(reasonSerialize)
		return false
	}
	data, err := marshalEnvelope(requestID, v)
	if err != nil {
		e.count.drop(reasonSerialize)
		return false
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.running || e.closed {
		e.count.drop(reasonPublish)
		return false
	}
	select {
	case e.queue <- event{subject: subject, data: data}:
		return true
	default:
		e.count.drop(reasonQueueFull)
		return false
	}
}

// Stats returns the emitter's counts so far. A nil emitter has none.
func (e *Emitter) Stats() Stats {
	if e == nil {
		return Stats{}
	}
	return e.count.stats()
}

// Connected reports whether the emitter has connected and is publishing;
// NATS may still be briefly unreachable while the connection reconnects.
func (e *Emitter) Connected() bool {
	if e == nil {
		return false
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.running && !e.closed
}

// Close stops accepting events, publishes what is queued, waits for the
// outstanding acks and closes the connection. Events still queued while NATS
// is unreachable are dropped rather than buffered, so with NATS down Close
// takes about AckTimeout. If ctx ends first, what is left is counted as
// dropped and ctx's error returned. Close is idempotent.
func (e *Emitter) Close(ctx context.Context) error {
	if e == nil {
		return nil
	}
	e.life.Lock()
	e.lifeStop()
	e.life.Unlock()

	e.mu.Lock()
	already := e.closed
	if !already {
		e.closed = true
		close(e.draining)
		if e.running {
			close(e.queue)
		}
	}
	e.mu.Unlock()

	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("emit: close: %w", ctx.Err())
		e.abortOnce.Do(func() { close(e.abort) })
		<-done // the pipeline notices abort at once
	}
	e.queues.remove(e.queue)

	e.life.Lock()
	nc := e.nc
	e.nc = nil
	e.life.Unlock()
	if nc != nil {
		nc.Close()
	}
	return err
}

// startPipeline switches on publishing over a new connection. Called with
// e.life held and the emitter neither closed nor already connected.
func (e *Emitter) startPipeline(nc *nats.Conn, js jetstream.JetStream) {
	e.nc = nc
	acks := make(chan jetstream.PubAckFuture, e.cfg.InFlight)
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		defer close(acks)
		e.publishLoop(nc, js, acks)
	}()
	go func() {
		defer e.wg.Done()
		e.ackLoop(acks)
	}()
	e.mu.Lock()
	e.running = true
	e.mu.Unlock()
}
