package checkpoint_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/checkpoint"
	"github.com/cdcrelay/cdcrelay/flow"
)

// trickle is a window whose items resolve one at a time, as acks come in
// at a low rate.
type trickle struct {
	mu       sync.Mutex
	ready    []flow.Item
	released int
	more     chan struct{}
	done     chan struct{}
	total    int
	full     atomic.Bool
	calls    atomic.Int64 // of Resolved
}

func (w *trickle) add(it flow.Item) {
	w.mu.Lock()
	w.ready = append(w.ready, it)
	w.mu.Unlock()
	select {
	case w.more <- struct{}{}:
	default:
	}
}

func (w *trickle) Resolved(ctx context.Context, buf []flow.Item) ([]flow.Item, error) {
	w.calls.Add(1)
	for {
		w.mu.Lock()
		n := min(len(w.ready), cap(buf)-len(buf))
		buf = append(buf, w.ready[:n]...)
		w.ready = w.ready[n:]
		w.mu.Unlock()
		if len(buf) > 0 {
			return buf, nil
		}
		select {
		case <-w.more:
		case <-ctx.Done():
			return buf, ctx.Err()
		}
	}
}

func (w *trickle) Full() bool { return w.full.Load() }

func (w *trickle) Release(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.released += n
	if w.released == w.total {
		close(w.done)
	}
}

// waitReleased waits until every item is released, then stops the loop
// (cancel) and checks that it ended only for that.
func (w *trickle) waitReleased(t *testing.T, cancel context.CancelFunc, loopErr <-chan error) {
	t.Helper()
	select {
	case <-w.done:
	case err := <-loopErr:
		t.Fatalf("loop ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not every item released within 30s")
	}
	cancel()
	if err := <-loopErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("loop: %v", err)
	}
}

type acks struct{ last atomic.Uint64 }

func (a *acks) Ack(done, _ pglogrepl.LSN) {
	if done != 0 {
		a.last.Store(uint64(done))
	}
}

// At a low rate the loop gathers the acks of a few milliseconds into one
// flip instead of flipping every event on its own: one round trip and one
// commit for several events, for the relay, PostgreSQL and every walsender.
func TestLoopGathersAcksAtALowRate(t *testing.T) {
	pool, run := setup(t)
	const events = 60
	items := make([]flow.Item, 0, 2*events)
	for i := range events {
		items = append(items, flow.Item{Event: insert(t, pool, "a.x")}, mark(pglogrepl.LSN(100+i)))
	}
	var flips atomic.Int64
	counting := func(ctx context.Context, fn func(context.Context, *pgx.Conn) error) error {
		flips.Add(1)
		return run(ctx, fn)
	}
	w := &trickle{more: make(chan struct{}, 1), done: make(chan struct{}), total: len(items)}
	var a acks
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loopErr := make(chan error, 1)
	go func() { loopErr <- checkpoint.Loop(ctx, w, counting, &a, nil, nil) }()
	// One transaction a millisecond: 1 k events/s.
	tick := time.NewTicker(time.Millisecond)
	for i := 0; i < len(items); i += 2 {
		<-tick.C
		w.add(items[i])
		w.add(items[i+1])
	}
	tick.Stop()
	w.waitReleased(t, cancel, loopErr)
	if got := a.last.Load(); got != uint64(100+events-1) {
		t.Fatalf("last ack %d, want %d", got, 100+events-1)
	}
	// Each flip may run several statements through the runner; at 1 event
	// a millisecond and a 5 ms linger, about one flip per 5 events.
	if n := flips.Load(); n > events/3 {
		t.Fatalf("%d runner calls for %d events: the loop flips too eagerly", n, events)
	}
	var flipped int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM bus.outbox WHERE published_to_nats`).Scan(&flipped); err != nil {
		t.Fatal(err)
	}
	if flipped != events {
		t.Fatalf("%d of %d rows flipped", flipped, events)
	}
}

// While the window is full nothing lingers: only the flip's Release lets
// more in, so the loop flips what it took at once instead of looking for
// more first.
func TestLoopDoesNotLingerWhileTheWindowIsFull(t *testing.T) {
	pool, run := setup(t)
	items := []flow.Item{{Event: insert(t, pool, "a.x")}, mark(100)}
	var before atomic.Int64 // Resolved calls before the first flip
	w := &trickle{more: make(chan struct{}, 1), done: make(chan struct{}), total: len(items)}
	w.full.Store(true)
	counting := func(ctx context.Context, fn func(context.Context, *pgx.Conn) error) error {
		before.CompareAndSwap(0, w.calls.Load())
		return run(ctx, fn)
	}
	var a acks
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loopErr := make(chan error, 1)
	go func() { loopErr <- checkpoint.Loop(ctx, w, counting, &a, nil, nil) }()
	w.add(items[0])
	w.add(items[1])
	w.waitReleased(t, cancel, loopErr)
	if n := before.Load(); n != 1 {
		t.Fatalf("Resolved called %d times before the first flip, want 1: the loop lingered on a full window", n)
	}
}
