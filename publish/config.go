package publish

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Defaults for Config fields left zero.
const (
	// DefaultMaxInFlight bounds the events (and marks) between the slot and
	// the flip. It must cover publishing and a flip at once: a flip of a few
	// thousand rows can take tens of milliseconds on a busy server, and with
	// 4096 in flight publishing starved meanwhile. 16384 drained a backlog
	// 20-30% faster than 4096 but the relay's RSS reached 91 MiB; 8192 keeps
	// most of the gain well inside a 100 MiB budget.
	DefaultMaxInFlight = 8192
	// DefaultMaxInFlightBytes bounds their payload and header bytes.
	DefaultMaxInFlightBytes = 64 << 20
	// DefaultMaxBatch is the most events in one JetStream batch. A batch
	// ends earlier once the relay has had nothing more to send for a few
	// milliseconds, so under a light load each batch is a transaction or a
	// few; a full batch's successor waits for its commit, one round trip
	// per DefaultMaxBatch events.
	DefaultMaxBatch = 4096
	// DefaultAckTimeout is how long a batch may go without word from
	// JetStream before the relay seals it and sends its unacked events again.
	DefaultAckTimeout = 5 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the waits between
	// recovery attempts while NATS or the stream is unavailable.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	// DefaultAtomicMaxBatch is the most events in one atomic batch under
	// Config.AtomicTransactions: nats-server's default limit
	// (jetstream { limits { batch { max_msgs } } } raises it on the server).
	DefaultAtomicMaxBatch = 1000
)

// Config configures a Pipeline.
type Config struct {
	// Stream is the JetStream stream the relay publishes to; it must allow
	// batched publishing (allow_batched). Events whose subject the stream
	// does not capture are dead-lettered without being sent.
	Stream string
	// MaxInFlight bounds the items in the window (default DefaultMaxInFlight).
	MaxInFlight int
	// MaxInFlightBytes bounds their bytes (default DefaultMaxInFlightBytes).
	MaxInFlightBytes int64
	// MaxBatch bounds the events in one JetStream batch (default
	// DefaultMaxBatch).
	MaxBatch int
	// AckTimeout (default DefaultAckTimeout).
	AckTimeout time.Duration
	// MinBackoff and MaxBackoff bound recovery retries.
	MinBackoff, MaxBackoff time.Duration
	// DiagnosticHeaders adds Cdcrelay-Outbox-Id and Cdcrelay-Commit-Lsn to
	// every message, and to each streamed event the times of its stages
	// (HeaderCommitTime and the others). Off by default: every consumer of
	// the bus would parse them.
	DiagnosticHeaders bool
	// OnRetry, when set, is called from the pipeline's goroutine with the
	// cause of each recovery and each failed attempt to resume; the relay
	// logs and counts them.
	OnRetry func(err error)
	// OnAck, when set, is called with the time from publish to ack of every
	// acked event (for the ack latency histogram).
	OnAck func(d time.Duration)
	// AtomicTransactions publishes every transaction as one JetStream
	// atomic batch (ADR-50; stream option allow_atomic): all of its events
	// are stored or none. Several small transactions may share a batch. A
	// transaction larger than AtomicMaxBatch, or with an event that is
	// dead-lettered, is published the ordinary way (see atomic.go).
	AtomicTransactions bool
	// AtomicMaxBatch bounds the events in one atomic batch (default
	// DefaultAtomicMaxBatch); set it to the server's limit when that was
	// raised.
	AtomicMaxBatch int
	// OnNotAtomic, when set, hears of each transaction that
	// AtomicTransactions could not publish atomically: its events so far
	// and why.
	OnNotAtomic func(events int, reason string)
	// Counters, when set, accumulates counts across pipelines (one per
	// leadership term) for metrics; otherwise the pipeline counts alone.
	Counters *Counters
}

// Counters are cumulative event counts, safe for concurrent use.
type Counters struct {
	Published   atomic.Uint64 // stored by JetStream (or found stored already)
	Duplicates  atomic.Uint64 // acked as duplicates where JetStream says so (a batch of one)
	DeadLetters atomic.Uint64
	Recoveries  atomic.Uint64 // batches that broke and were sent again
	// NotAtomic counts transactions published the ordinary way under
	// AtomicTransactions (too large for one atomic batch, or holding a
	// dead letter).
	NotAtomic atomic.Uint64
}

func (c *Config) setDefaults() {
	if c.Counters == nil {
		c.Counters = &Counters{}
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.AtomicMaxBatch == 0 {
		c.AtomicMaxBatch = DefaultAtomicMaxBatch
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
}

func (c *Config) validate() error {
	switch {
	case c.Stream == "":
		return errors.New("stream name is empty")
	case c.MaxInFlight < 1:
		return fmt.Errorf("max in flight %d: must be at least 1", c.MaxInFlight)
	case c.MaxInFlightBytes < 1:
		return fmt.Errorf("max in flight bytes %d: must be at least 1", c.MaxInFlightBytes)
	case c.AtomicMaxBatch < 1:
		return fmt.Errorf("atomic max batch %d: must be at least 1", c.AtomicMaxBatch)
	case c.MaxBatch < 1:
		return fmt.Errorf("max batch %d: must be at least 1", c.MaxBatch)
	case c.AckTimeout < 0, c.MinBackoff < 0, c.MaxBackoff < c.MinBackoff:
		return errors.New("ack timeout and back-off must be positive, max back-off ≥ min back-off")
	}
	return nil
}
