package decode

import (
	"encoding/hex"
	"time"
	"unsafe"

	"github.com/jackc/pglogrepl"
)

// Event is one outbox row. All fields are owned: none aliases the buffer
// given to Decode.
type Event struct {
	ID        int64    // bus.outbox.id
	EventID   [16]byte // event_id; the JetStream Nats-Msg-Id (see EventIDString)
	Subject   string
	Payload   []byte
	Headers   map[string][]string // nil when the column is NULL, absent or {}
	CreatedAt time.Time           // zero if the column is absent, NULL or ±infinity
	CommitLSN pglogrepl.LSN       // the transaction's commit LSN (Begin.FinalLSN)
	// Problem is set when the row decoded at protocol level but its content
	// is unusable (headers that are not an object of string → string or
	// array of strings, or header names and values NATS cannot carry). The
	// relay dead-letters such an event instead of stopping.
	Problem error
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

// ownedString views b as a string without copying it. Decode copies each
// event's subject, payload and header strings into one buffer it allocates,
// and viewing parts of that buffer as strings saves an allocation per string
// on the hot path. Safe only because b is package-allocated memory that is
// never written after this call; Payload, the one mutable view, is a
// disjoint, capacity-limited slice of the same buffer.
func ownedString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
