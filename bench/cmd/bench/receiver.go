package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/bench/internal/load"
	"github.com/cdcrelay/cdcrelay/publish"
)

// receiver is a JetStream consumer of one run's subject, as a service would
// run one. It notes, per event, when it arrived and when JetStream stored it
// (the message's stream timestamp, taken just before the ack is sent; the
// server shares the benchmark's clock).
type receiver struct {
	tag      uint32
	recv     []int64 // Unix ns, first receipt
	ack      []int64 // Unix ns, stored in the stream
	dups     atomic.Int64
	maxSeq   atomic.Int64
	foreign  atomic.Int64
	cc       jetstream.ConsumeContext
	received chan struct{} // signalled (not closed) on progress
	// trace holds, per event, the stage times the relay reports in its
	// diagnostic headers (Unix ns); nil unless asked for.
	trace *relayTrace
}

// relayTrace is what cdcrelay's diagnostic headers say of each event.
type relayTrace struct {
	commit, sent, recv, published []int64
}

// at is what the headers of event seq said, read as the receiver wrote it
// (the consumer may still be running).
func (t *relayTrace) at(seq int64) (commit, sent, recv, published int64) {
	return atomic.LoadInt64(&t.commit[seq]), atomic.LoadInt64(&t.sent[seq]), atomic.LoadInt64(&t.recv[seq]), atomic.LoadInt64(&t.published[seq])
}

func newRelayTrace(n int64) *relayTrace {
	return &relayTrace{commit: make([]int64, n), sent: make([]int64, n), recv: make([]int64, n), published: make([]int64, n)}
}

func (t *relayTrace) record(seq int64, h nats.Header) {
	for _, c := range [...]struct {
		header string
		to     []int64
	}{
		{publish.HeaderCommitTime, t.commit}, {publish.HeaderSent, t.sent},
		{publish.HeaderReceived, t.recv}, {publish.HeaderPublished, t.published},
	} {
		if at, err := time.Parse(time.RFC3339Nano, h.Get(c.header)); err == nil {
			atomic.StoreInt64(&c.to[seq], at.UnixNano())
		}
	}
}

// receive starts a receiver of n events; traced also keeps the stage times
// of cdcrelay's diagnostic headers.
func (s *session) receive(ctx context.Context, subject string, tag uint32, n int64, traced bool) (*receiver, error) {
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer: %w", err)
	}
	r := &receiver{tag: tag, recv: make([]int64, n), ack: make([]int64, n), received: make(chan struct{}, 1)}
	r.maxSeq.Store(-1)
	if traced {
		r.trace = newRelayTrace(n)
	}
	r.cc, err = cons.Consume(r.handle, jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	return r, nil
}

func (r *receiver) handle(m jetstream.Msg) {
	now := time.Now().UnixNano()
	tag, seq, _, ok := load.Decode(m.Data())
	if !ok || tag != r.tag || seq < 0 || seq >= int64(len(r.recv)) {
		r.foreign.Add(1)
		return
	}
	if !atomic.CompareAndSwapInt64(&r.recv[seq], 0, now) {
		r.dups.Add(1)
		return
	}
	if md, err := m.Metadata(); err == nil {
		atomic.StoreInt64(&r.ack[seq], md.Timestamp.UnixNano())
	}
	if r.trace != nil {
		r.trace.record(seq, m.Headers())
	}
	for {
		cur := r.maxSeq.Load()
		if seq <= cur || r.maxSeq.CompareAndSwap(cur, seq) {
			break
		}
	}
	select {
	case r.received <- struct{}{}:
	default:
	}
}

// waitAll waits until every event with a commit time has arrived (events
// without one were never written, or their commit was not seen) and returns
// how many are still missing at the timeout.
func (r *receiver) waitAll(ctx context.Context, commit []int64, timeout time.Duration) (int64, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	next := 0 // everything before next has arrived
	for {
		missing := int64(0)
		for i := next; i < len(commit); i++ {
			if commit[i] != 0 && r.recvAt(int64(i)) == 0 {
				if missing == 0 {
					next = i
				}
				missing++
			}
		}
		if missing == 0 {
			return 0, nil
		}
		select {
		case <-r.received:
		case <-time.After(20 * time.Millisecond):
		case <-deadline.C:
			return missing, nil
		case <-ctx.Done():
			return missing, ctx.Err()
		}
	}
}

// waitSeq waits until an event numbered seq or higher has arrived.
func (r *receiver) waitSeq(ctx context.Context, seq int64, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for r.maxSeq.Load() < seq {
		select {
		case <-r.received:
		case <-deadline.C:
			return fmt.Errorf("no event from #%d on within %v", seq, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *receiver) stop() {
	r.cc.Stop()
	<-r.cc.Closed()
}

func (r *receiver) recvAt(i int64) int64 { return atomic.LoadInt64(&r.recv[i]) }
func (r *receiver) ackAt(i int64) int64  { return atomic.LoadInt64(&r.ack[i]) }
