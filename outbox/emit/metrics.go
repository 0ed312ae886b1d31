package emit

import (
	"errors"
	"fmt"
	"sync"
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
	vec, err := registerShared(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "cdcrelay",
		Subsystem: "emitter",
		Name:      "dropped_total",
		Help:      "Events passed to Emit that were not acknowledged by JetStream, by reason.",
	}, []string{"reason"}))
	if err != nil {
		return nil, fmt.Errorf("register drop counter: %w", err)
	}
	c := &counters{}
	for r := range numReasons {
		// Creating every child up front exports zeros, so rate() works from the start.
		c.metric[r] = vec.WithLabelValues(r.label())
	}
	return c, nil
}

// registerShared registers c on reg and returns it, or the collector of the
// same kind already registered there: a second emitter in the process shares
// the first one's metrics. A nil reg registers nothing.
func registerShared[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// queues exports the depth and capacity of the queues of the emitters
// registered on one registry, summed (like the drop counter, one series per
// process). They are read at scrape time: Emit pays nothing for them.
type queues struct {
	depth, capacity *prometheus.Desc

	mu  sync.Mutex
	set map[chan event]struct{}
}

func newQueues(reg prometheus.Registerer) (*queues, error) {
	q, err := registerShared(reg, &queues{
		depth: prometheus.NewDesc("cdcrelay_emitter_queued_events",
			"Events accepted by Emit and not yet handed to NATS; at cdcrelay_emitter_queue_capacity_events Emit drops (reason queue_full).", nil, nil),
		capacity: prometheus.NewDesc("cdcrelay_emitter_queue_capacity_events",
			"Events the emitters' queues hold at most (Config.QueueSize).", nil, nil),
		set: map[chan event]struct{}{},
	})
	if err != nil {
		return nil, fmt.Errorf("register queue gauges: %w", err)
	}
	return q, nil
}

func (q *queues) add(ch chan event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.set[ch] = struct{}{}
}

func (q *queues) remove(ch chan event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.set, ch)
}

// Describe sends the two gauges' descriptors.
func (q *queues) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.depth
	ch <- q.capacity
}

// Collect sums the queues' lengths and capacities.
func (q *queues) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	depth, capacity := 0, 0
	for c := range q.set {
		depth += len(c)
		capacity += cap(c)
	}
	q.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(q.depth, prometheus.GaugeValue, float64(depth))
	ch <- prometheus.MustNewConstMetric(q.capacity, prometheus.GaugeValue, float64(capacity))
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
