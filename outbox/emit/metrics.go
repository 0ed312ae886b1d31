package emit

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// reason says why an event was dropped; its label is the drop counter's
// reason label, a closed set.
type reason int

const (
	// reasonQueueFull: Emit found the queue full.
	reasonQueueFull reason = iota
	// reasonSerialize: the body did not marshal to JSON (or its marshaller
	// panicked), or the name made an invalid subject.
	reasonSerialize
	// reasonPublish: the event could not be handed to NATS: the emitter was
	// not connected (before Start succeeded, or after Close), the publish
	// call failed, or Close gave up before publishing it.
	reasonPublish
	// reasonAck: JetStream refused the event, its ack timed out, or Close gave
	// up waiting for the ack. The event may still have been stored.
	reasonAck
	numReasons
)

func (r reason) label() string {
	switch r {
	case reasonQueueFull:
		return "queue_full"
	case reasonSerialize:
		return "serialize"
	case reasonPublish:
		return "publish"
	default:
		return "ack"
	}
}

// Stats counts what happened to the events passed to Emit. Once Close has
// returned, Delivered plus the drops equals the number of Emit calls.
// The drop fields match the reason label of cdcrelay_emitter_dropped_total.
type Stats struct {
	Delivered uint64 // acknowledged by JetStream
	QueueFull uint64 // reason="queue_full": Emit found the queue full
	Serialize uint64 // reason="serialize": body did not marshal, or bad subject
	Publish   uint64 // reason="publish": not connected, publish failed, or Close gave up first
	Ack       uint64 // reason="ack": refused, ack timed out, or Close gave up waiting
}

// Dropped is the sum of the drops over every reason.
func (s Stats) Dropped() uint64 { return s.QueueFull + s.Serialize + s.Publish + s.Ack }

// Total is Delivered plus Dropped.
func (s Stats) Total() uint64 { return s.Delivered + s.Dropped() }

// counters holds one emitter's counts; the Prometheus counters may be shared
// by several emitters registered on the same registry.
type counters struct {
	delivered atomic.Uint64
	dropped   [numReasons]atomic.Uint64
	metric    [numReasons]prometheus.Counter
}

func newCounters(reg prometheus.Registerer) (*counters, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "cdcrelay",
		Subsystem: "emitter",
		Name:      "dropped_total",
		Help:      "Events passed to Emit that were not acknowledged by JetStream, by reason.",
	}, []string{"reason"})
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			// A second emitter in the process shares the first one's counter.
			var are prometheus.AlreadyRegisteredError
			existing, ok := vec, false
			if errors.As(err, &are) {
				existing, ok = are.ExistingCollector.(*prometheus.CounterVec)
			}
			if !ok {
				return nil, fmt.Errorf("register drop counter: %w", err)
			}
			vec = existing
		}
	}
	c := &counters{}
	for r := range numReasons {
		// Creating every child up front exports zeros, so rate() works from the start.
		c.metric[r] = vec.WithLabelValues(r.label())
	}
	return c, nil
}

func (c *counters) drop(r reason) {
	c.dropped[r].Add(1)
	c.metric[r].Inc()
}

func (c *counters) stats() Stats {
	return Stats{
		Delivered: c.delivered.Load(),
		QueueFull: c.dropped[reasonQueueFull].Load(),
		Serialize: c.dropped[reasonSerialize].Load(),
		Publish:   c.dropped[reasonPublish].Load(),
		Ack:       c.dropped[reasonAck].Load(),
	}
}
