package outbox

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// Execer runs a statement: pgx.Tx, *pgx.Conn, *pgxpool.Pool and
// *pgxpool.Conn satisfy it. Pass the transaction of the change the event
// announces; with a pool or a connection outside a transaction, the event
// commits on its own.
type Execer interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
}

// Event is one event for PublishBatch.
type Event struct {
	// Subject is the NATS subject; see ValidateSubject.
	Subject string
	// Payload is the message body; nil means empty.
	Payload []byte
	// Headers become NATS headers of the message; names must pass
	// ValidateHeaderName. Nil means none.
	Headers map[string][]string
}

// Option adds to an event published with Publish.
type Option func(*options)

type options struct {
	headers map[string][]string
}

// WithHeader adds a value to the header name.
func WithHeader(name, value string) Option {
	return func(o *options) { o.addHeader(name, value) }
}

// WithHeaders adds every value of h.
func WithHeaders(h map[string][]string) Option {
	return func(o *options) {
		for name, values := range h {
			o.addHeader(name, values...)
		}
	}
}

// addHeader appends to a map and slices of its own, so no option aliases
// the caller's.
func (o *options) addHeader(name string, values ...string) {
	if o.headers == nil {
		o.headers = make(map[string][]string)
	}
	o.headers[name] = append(o.headers[name], values...)
}

const insertOne = `INSERT INTO bus.outbox (event_id, subject, payload, headers) VALUES ($1, $2, $3, $4)`

// Publish inserts one event into bus.outbox through db and returns its event
// id, a UUIDv7. It checks subject and header names first (see
// ValidateSubject and ValidateHeaderName) and returns their errors as they
// are.
func Publish(ctx context.Context, db Execer, subject string, payload []byte, opts ...Option) (uuid.UUID, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	r, err := newRow(Event{Subject: subject, Payload: payload, Headers: o.headers})
	if err != nil {
		return uuid.Nil, err
	}
	if _, err := db.Exec(ctx, insertOne, r.id, r.subject, r.payload, r.headers); err != nil {
		return uuid.Nil, fmt.Errorf("publish to %s: insert into bus.outbox: %w", subject, err)
	}
	return r.id, nil
}

// row is an Event checked and encoded as bus.outbox's columns.
type row struct {
	id      uuid.UUID
	subject string
	payload []byte
	headers []byte // JSON; nil for SQL NULL
}

func newRow(e Event) (row, error) {
	if err := ValidateSubject(e.Subject); err != nil {
		return row{}, err
	}
	headers, err := encodeHeaders(e.Headers)
	if err != nil {
		return row{}, err
	}
	if len(e.Payload) == 0 && e.Headers["Status"] != nil {
		return row{}, ErrStatusWithoutPayload
	}
	id, err := uuid.NewV7()
	if err != nil {
		return row{}, fmt.Errorf("new event id: %w", err)
	}
	payload := e.Payload
	if payload == nil {
		payload = []byte{} // the column is NOT NULL; an empty message is fine
	}
	return row{id: id, subject: e.Subject, payload: payload, headers: headers}, nil
}

// encodeHeaders gives the JSON the CHECK accepts: an object whose values are
// strings (one value) or arrays of strings.
func encodeHeaders(h map[string][]string) ([]byte, error) {
	if len(h) == 0 {
		return nil, nil
	}
	obj := make(map[string]any, len(h))
	for name, values := range h {
		if err := ValidateHeaderName(name); err != nil {
			return nil, err
		}
		switch len(values) {
		case 0:
			obj[name] = []string{} // not null, which the CHECK refuses
		case 1:
			obj[name] = values[0]
		default:
			obj[name] = values
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode headers: %w", err)
	}
	return b, nil
}
