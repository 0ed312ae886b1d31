// Package flow holds what flows through the relay, and nothing else: the
// Event an outbox row becomes (decode makes it, publish sends it, checkpoint
// flips its row) and the Item that carries events and slot positions through
// the publish window to the checkpoint. A leaf: it imports no other package of
// the relay, so decode, publish and checkpoint are siblings around it.
package flow

import (
	"encoding/hex"
	"errors"
	"time"

	"github.com/jackc/pglogrepl"
)

// ErrFull is what a window's Submit returns when it stayed full until the
// deadline given: the caller keeps its other duties and tries again.
var ErrFull = errors.New("in-flight window full")

// Event is one outbox row. All fields are owned: none aliases the buffer
// given to the decoder.
type Event struct {
	ID        int64    // bus.outbox.id
	EventID   [16]byte // event_id; the JetStream Nats-Msg-Id (see EventIDString)
	Subject   string
	Payload   []byte
	Headers   map[string][]string // nil when the column is NULL, absent or {}
	CreatedAt time.Time           // zero if the column is absent, NULL or ±infinity
	CommitLSN pglogrepl.LSN       // the transaction's commit LSN (Begin.FinalLSN)
	Trace     Trace               // when it passed the stages before the publish
	// Problem is set when the row decoded at protocol level but its content
	// is unusable (headers that are not an object of string → string or
	// array of strings, or header names and values NATS cannot carry). The
	// relay dead-letters such an event instead of stopping.
	Problem error
}

// Trace is when an event streamed from the slot passed each stage before the
// publish, as the relay's diagnostic headers report them. All zero for a
// backfilled event. Committed and Sent are PostgreSQL's clock, Received the
// relay's.
type Trace struct {
	Committed time.Time // its transaction's commit timestamp (pgoutput Begin)
	Sent      time.Time // the walsender sent it (XLogData send time)
	Received  time.Time // the relay read it
}

// EventIDString formats EventID in the canonical 8-4-4-4-12 lowercase hex.
func (e *Event) EventIDString() string {
	var b [36]byte
	hex.Encode(b[0:8], e.EventID[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], e.EventID[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], e.EventID[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], e.EventID[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], e.EventID[10:16])
	return string(b[:])
}

// Size is roughly the memory the event holds (payload, subject, header names
// and values), for the publish window's byte limit.
func (e *Event) Size() int {
	n := len(e.Payload) + len(e.Subject)
	for k, vs := range e.Headers {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	return n
}

// Item is one entry of the in-flight window: an event to publish, or a
// position mark (a transaction's end, a heartbeat) that becomes confirmable
// once every item before it is done.
type Item struct {
	// Event is nil for a mark.
	Event *Event
	// Mark is the LSN a mark stands for; zero for events.
	Mark pglogrepl.LSN
	// Committed is when a mark's transaction committed (zero if unknown);
	// the age of the oldest unreleased one is the relay's lag in seconds.
	Committed time.Time
	// DeadLetter is set on an event JetStream (or the relay's pre-checks)
	// refused for good: it is recorded, not retried.
	DeadLetter error
	// Backfill is set on an event read from the outbox table rather than
	// the slot: its transaction is not known, so publish.Config.AtomicTransactions
	// publishes it the ordinary way.
	Backfill bool
}

// Size is the bytes the item holds against the window's byte limit.
func (it Item) Size() int64 {
	if it.Event == nil {
		return 0
	}
	return int64(it.Event.Size())
}
