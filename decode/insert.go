package decode

import (
	"errors"
	"fmt"

	"github.com/cdcrelay/cdcrelay/flow"
)

// value is one tuple column as sent, aliasing the message.
type value struct {
	format byte
	typ    uint32
	data   []byte
}

var errUnchangedHeaders = errors.New("headers: unchanged TOAST value, which an insert cannot carry")

// errStatusWithoutPayload: NATS clients take a message with no payload and
// a Status header for a status message from the server (nats.go's
// consumers drop it), so such an event would be stored but never
// delivered. The header name is matched exactly, as nats.go does.
var errStatusWithoutPayload = errors.New(`headers: a "Status" header on an event with an empty payload: NATS clients take it for a server status message and never deliver it (give the event a payload or the header another name)`)

// CheckEvent sets ev.Problem, unless it has one, for what no single
// column's rules catch: an empty payload with a "Status" header. Every way
// an event is read (the stream, a backfill) runs it.
func CheckEvent(ev *flow.Event) {
	if ev.Problem == nil && len(ev.Payload) == 0 && ev.Headers["Status"] != nil {
		ev.Problem = errStatusWithoutPayload
	}
}

// insert decodes an Insert message ('I', type byte already read).
func (d *Decoder) insert(c *cursor) (Message, error) {
	oid := c.u32("relation OID")
	if c.err != nil {
		return Message{}, c.err
	}
	rel, ok := d.rels[oid]
	if !ok {
		return Message{}, fmt.Errorf("relation OID %d was not described by a Relation message first", oid)
	}
	if !rel.outbox {
		return Message{Kind: KindSkip}, nil
	}
	if !d.inTx {
		return Message{}, fmt.Errorf("into %s outside a transaction", rel.name)
	}
	tag := c.u8("tuple tag")
	n := int(c.u16("column count"))
	if c.err != nil {
		return Message{}, fmt.Errorf("into %s: %w", rel.name, c.err)
	}
	if tag != 'N' {
		return Message{}, fmt.Errorf("into %s: tuple tag %q, want 'N'", rel.name, tag)
	}
	if n != len(rel.cols) {
		return Message{}, fmt.Errorf("into %s: tuple has %d columns, its Relation message %d", rel.name, n, len(rel.cols))
	}
	var vals [numFields]value
	for i := range rel.cols {
		s := &rel.cols[i]
		v := value{format: c.u8("column format"), typ: s.typ}
		switch v.format {
		case formatText, formatBinary:
			v.data = c.bytes("value", c.u32("value length"))
		case formatNull, formatUnchanged:
		default:
			if c.err == nil {
				return Message{}, fmt.Errorf("into %s: column %d %q: unknown value format %q", rel.name, i, s.name, v.format)
			}
		}
		if c.err != nil {
			return Message{}, fmt.Errorf("into %s: column %d %q: %w", rel.name, i, s.name, c.err)
		}
		vals[s.field] = v // ignored columns all land in vals[fieldIgnored]
	}
	if err := c.end(); err != nil {
		return Message{}, fmt.Errorf("into %s: %w", rel.name, err)
	}
	ev, err := d.event(&vals)
	if err != nil {
		return Message{}, fmt.Errorf("into %s: %w", rel.name, err)
	}
	ev.CommitLSN = d.finalLSN
	return Message{Kind: KindInsert, Event: ev}, nil
}

// event builds an owned Event from the outbox columns of one insert. The
// subject, payload and header strings share one allocation.
func (d *Decoder) event(v *[numFields]value) (*flow.Event, error) {
	for f := fieldID; f < numFields; f++ {
		switch col := columnOf(f); {
		case !col.required:
		case v[f].format == formatNull:
			return nil, fmt.Errorf("column %q is NULL", col.name)
		case v[f].format == formatUnchanged:
			return nil, fmt.Errorf("column %q is an unchanged TOAST value, which an insert cannot carry", col.name)
		}
	}
	ev := &flow.Event{}
	var err error
	if ev.ID, err = intValue(v[fieldID].typ, v[fieldID].format, v[fieldID].data); err != nil {
		return nil, fmt.Errorf("column \"id\": %w", err)
	}
	if ev.EventID, err = uuidValue(v[fieldEventID].format, v[fieldEventID].data); err != nil {
		return nil, fmt.Errorf("column \"event_id\": %w", err)
	}
	pv := &v[fieldPayload]
	payloadLen, err := byteaLen(pv.format, pv.data)
	if err != nil {
		return nil, fmt.Errorf("column \"payload\": %w", err)
	}
	var headers []byte
	switch hv := &v[fieldHeaders]; hv.format {
	case formatText, formatBinary:
		if headers, err = jsonText(hv.typ, hv.format, hv.data); err != nil {
			return nil, fmt.Errorf("column \"headers\": %w", err)
		}
	case formatUnchanged:
		ev.Problem = errUnchangedHeaders
	}
	switch tv := &v[fieldCreatedAt]; tv.format {
	case formatText, formatBinary:
		if ev.CreatedAt, err = timeValue(tv.format, tv.data); err != nil {
			return nil, fmt.Errorf("column \"created_at\": %w", err)
		}
	}

	subject := v[fieldSubject].data
	// Decoded header strings never take more bytes than their JSON text.
	buf := make([]byte, len(subject)+payloadLen+len(headers))
	copy(buf, subject)
	ev.Subject = ownedString(buf[:len(subject)])
	end := len(subject) + payloadLen
	ev.Payload = buf[len(subject):end:end]
	if err := byteaDecode(pv.format, pv.data, ev.Payload); err != nil {
		return nil, fmt.Errorf("column \"payload\": %w", err)
	}
	if headers != nil {
		ev.Headers, ev.Problem = d.headers.parse(headers, buf[end:])
	}
	CheckEvent(ev)
	return ev, nil
}
