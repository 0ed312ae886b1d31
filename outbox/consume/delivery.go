package consume

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Delivery is one message as the consumer received it. Data and Headers
// belong to the caller: the client copies every payload off the wire, so
// they stay valid after Ack and may be kept.
type Delivery struct {
	Subject string
	Data    []byte
	Headers nats.Header
	// EventID is the Nats-Msg-Id header parsed as a UUID: the outbox
	// event_id for relayed events, a UUIDv7 for emitted ones. uuid.Nil when
	// the publisher set none (Seen refuses it).
	EventID uuid.UUID
	// Seq is the message's sequence number in the stream.
	Seq uint64
	// NumDelivered counts deliveries of this message, this one included: more
	// than one means an earlier delivery was not acknowledged in time.
	NumDelivered uint64
	// Timestamp is when the stream stored the message.
	Timestamp time.Time

	msg jetstream.Msg
}

func newDelivery(msg jetstream.Msg) (*Delivery, error) {
	md, err := msg.Metadata()
	if err != nil {
		return nil, fmt.Errorf("consume: message metadata: %w", err)
	}
	headers := msg.Headers()
	id, err := uuid.Parse(headers.Get(jetstream.MsgIDHeader))
	if err != nil {
		id = uuid.Nil
	}
	return &Delivery{
		Subject:      msg.Subject(),
		Data:         msg.Data(),
		Headers:      headers,
		EventID:      id,
		Seq:          md.Sequence.Stream,
		NumDelivered: md.NumDelivered,
		Timestamp:    md.Timestamp,
		msg:          msg,
	}, nil
}

// Ack acknowledges the delivery and waits for the server to confirm it, so a
// nil error means the message will not come again. Call it only after the
// effects are durable (committed).
func (d *Delivery) Ack(ctx context.Context) error {
	if err := d.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("consume: ack %s seq %d: %w", d.Subject, d.Seq, err)
	}
	return nil
}

// Nak asks for the message again after delay (at once when delay is zero),
// rather than waiting out AckWait.
func (d *Delivery) Nak(delay time.Duration) error {
	var err error
	if delay > 0 {
		err = d.msg.NakWithDelay(delay)
	} else {
		err = d.msg.Nak()
	}
	if err != nil {
		return fmt.Errorf("consume: nak %s seq %d: %w", d.Subject, d.Seq, err)
	}
	return nil
}

// Term tells the server never to send the message again: for a message the
// consumer can never handle, such as one that does not parse.
func (d *Delivery) Term() error {
	if err := d.msg.Term(); err != nil {
		return fmt.Errorf("consume: term %s seq %d: %w", d.Subject, d.Seq, err)
	}
	return nil
}

// InProgress resets the delivery's AckWait, for handlers that run long.
func (d *Delivery) InProgress() error {
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("consume: in progress %s seq %d: %w", d.Subject, d.Seq, err)
	}
	return nil
}
