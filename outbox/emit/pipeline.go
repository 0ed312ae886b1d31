package emit

import (
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishLoop hands queued events to JetStream and passes each ack future
// to ackLoop. It returns when the queue is closed and empty. A full acks
// channel is the back-pressure: it stops this loop, the queue fills and Emit
// starts dropping, so memory stays bounded however long NATS is away.
func (e *Emitter) publishLoop(nc *nats.Conn, js jetstream.JetStream, acks chan<- jetstream.PubAckFuture) {
	for ev := range e.queue {
		// While NATS is away, buffering the rest of the queue on the way down
		// would only make Close wait out their ack timeouts.
		if e.aborted() || (isClosed(e.draining) && !nc.IsConnected()) {
			e.count.drop(reasonPublish)
			continue
		}
		id, err := uuid.NewV7()
		if err != nil { // only if the system's random source fails
			e.count.drop(reasonPublish)
			continue
		}
		msg := &nats.Msg{
			Subject: ev.subject,
			Data:    ev.data,
			Header: nats.Header{
				// A UUIDv7, like the relay's event ids: JetStream deduplicates
				// on it and consumers key their inbox on it.
				jetstream.MsgIDHeader: []string{id.String()},
				// The server refuses rather than stores in the wrong stream.
				jetstream.ExpectedStreamHeader: []string{e.cfg.Stream},
			},
		}
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			e.count.drop(reasonPublish)
			continue
		}
		select {
		case acks <- f:
		case <-e.abort:
			e.count.drop(reasonAck)
		}
	}
}

// ackLoop waits for each publish's ack in publish order and counts the
// outcome. It returns when publishLoop has closed acks.
func (e *Emitter) ackLoop(acks <-chan jetstream.PubAckFuture) {
	for f := range acks {
		select {
		case <-f.Ok():
			e.count.delivered.Add(1)
		case <-f.Err():
			e.count.drop(reasonAck)
		case <-e.abort:
			select {
			case <-f.Ok():
				e.count.delivered.Add(1)
			default:
				e.count.drop(reasonAck)
			}
		}
	}
}

func (e *Emitter) aborted() bool { return isClosed(e.abort) }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
