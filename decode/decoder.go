// Package decode turns pgoutput (logical replication protocol version 1)
// messages into cdcrelay events: inserts into the outbox table become Events,
// transaction boundaries and logical messages are passed through, and
// everything else is skipped. It does no I/O; everything it returns is owned,
// so the caller may reuse its receive buffer as soon as Decode returns.
package decode

import (
	"bytes"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/flow"
)

// Table names the outbox table whose inserts become events. Empty fields
// take the defaults, the outbox `cdcrelay migrate` creates.
type Table struct{ Schema, Name string }

// The outbox `cdcrelay migrate` creates.
const (
	DefaultSchema = "bus"
	DefaultName   = "outbox"
)

// Kind says which fields of a Message are set.
type Kind uint8

// The zero Kind is not a valid message, so a forgotten assignment is noticed.
const (
	KindBegin    Kind = iota + 1 // FinalLSN, CommitTime, Xid
	KindInsert                   // Event
	KindCommit                   // CommitLSN, EndLSN, CommitTime
	KindMessage                  // Transactional, MessageLSN, Prefix, Content
	KindRelation                 // a relation layout was cached; nothing to do
	KindSkip                     // not for the relay (other tables, updates, deletes, ...)
)

func (k Kind) String() string {
	switch k {
	case KindBegin:
		return "begin"
	case KindInsert:
		return "insert"
	case KindCommit:
		return "commit"
	case KindMessage:
		return "message"
	case KindRelation:
		return "relation"
	case KindSkip:
		return "skip"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Message is one decoded pgoutput message; Kind says which fields are set.
type Message struct {
	Kind Kind

	// Begin. CommitTime is also set by Commit.
	FinalLSN   pglogrepl.LSN
	CommitTime time.Time
	Xid        uint32

	// Commit. EndLSN is the transaction's end: the position a subscriber
	// confirms once everything in the transaction is handled.
	CommitLSN pglogrepl.LSN
	EndLSN    pglogrepl.LSN

	// Insert into the outbox.
	Event *flow.Event

	// Message from pg_logical_emit_message (needs the 'messages' option).
	// A non-transactional message arrives outside any Begin/Commit.
	Transactional bool
	MessageLSN    pglogrepl.LSN
	Prefix        string
	Content       []byte
}

// Decoder decodes the messages of one replication stream, in order. It keeps
// the relation layouts the walsender sent and the open transaction, so use a
// new Decoder for each START_REPLICATION. It is not safe for concurrent use.
type Decoder struct {
	table Table
	rels  map[uint32]*relation

	inTx     bool
	finalLSN pglogrepl.LSN

	headers headerParser // scratch reused across events
}

// New returns a Decoder for inserts into t.
func New(t Table) *Decoder {
	if t.Schema == "" {
		t.Schema = DefaultSchema
	}
	if t.Name == "" {
		t.Name = DefaultName
	}
	return &Decoder{table: t, rels: make(map[uint32]*relation)}
}

// Decode decodes one pgoutput message (the payload of an XLogData frame).
// Errors mean the stream cannot be trusted (malformed message, unknown
// relation, an outbox without the columns the relay needs); problems with one
// event's content are reported in Event.Problem instead.
func (d *Decoder) Decode(data []byte) (Message, error) {
	if len(data) == 0 {
		return Message{}, fmt.Errorf("empty message")
	}
	c := cursor{b: data, off: 1}
	switch data[0] {
	case 'B':
		return d.begin(&c)
	case 'C':
		return d.commit(&c)
	case 'I':
		m, err := d.insert(&c)
		if err != nil {
			return Message{}, fmt.Errorf("insert: %w", err)
		}
		return m, nil
	case 'R':
		if err := d.relation(&c); err != nil {
			return Message{}, fmt.Errorf("relation: %w", err)
		}
		return Message{Kind: KindRelation}, nil
	case 'M':
		return d.message(&c)
	case 'U', 'D', 'T', 'Y', 'O':
		// The publication is insert-only, but an operator may widen it; the
		// relay's own flips of published_to_nats must never come back as
		// events.
		return Message{Kind: KindSkip}, nil
	}
	return Message{}, fmt.Errorf("unknown message type %q (0x%02x): protocol version 1 without streaming was expected", data[0], data[0])
}

func (d *Decoder) begin(c *cursor) (Message, error) {
	m := Message{Kind: KindBegin}
	m.FinalLSN = pglogrepl.LSN(c.u64("final LSN"))
	m.CommitTime = pgTime(int64(c.u64("commit timestamp")))
	m.Xid = c.u32("xid")
	if err := c.end(); err != nil {
		return Message{}, fmt.Errorf("begin: %w", err)
	}
	if d.inTx {
		return Message{}, fmt.Errorf("begin of xid %d (final LSN %s) inside the transaction ending at %s", m.Xid, m.FinalLSN, d.finalLSN)
	}
	d.inTx, d.finalLSN = true, m.FinalLSN
	return m, nil
}

func (d *Decoder) commit(c *cursor) (Message, error) {
	m := Message{Kind: KindCommit}
	c.u8("flags")
	m.CommitLSN = pglogrepl.LSN(c.u64("commit LSN"))
	m.EndLSN = pglogrepl.LSN(c.u64("end LSN"))
	m.CommitTime = pgTime(int64(c.u64("commit timestamp")))
	if err := c.end(); err != nil {
		return Message{}, fmt.Errorf("commit: %w", err)
	}
	if !d.inTx {
		return Message{}, fmt.Errorf("commit at %s without a begin", m.CommitLSN)
	}
	// The built-in subscriber makes the same check (apply_handle_commit).
	if m.CommitLSN != d.finalLSN {
		return Message{}, fmt.Errorf("commit LSN %s differs from the begin's final LSN %s", m.CommitLSN, d.finalLSN)
	}
	d.inTx = false
	return m, nil
}

func (d *Decoder) message(c *cursor) (Message, error) {
	m := Message{Kind: KindMessage}
	m.Transactional = c.u8("flags")&1 != 0
	m.MessageLSN = pglogrepl.LSN(c.u64("LSN"))
	prefix := c.cstring("prefix")
	content := c.bytes("content", c.u32("content length"))
	if err := c.end(); err != nil {
		return Message{}, fmt.Errorf("message: %w", err)
	}
	m.Prefix = string(prefix)
	m.Content = bytes.Clone(content)
	return m, nil
}
