// Package load is the benchmark's load generator: writers on a pgx pool
// inserting events through the outbox client, either as fast as they can
// (closed loop) or open loop, scheduled by the wall clock so that a slow
// system under test cannot slow the offered load down. Each event's payload
// carries a run tag, its sequence number and its intended time, so a
// consumer can measure latency from when the event was due, counting the
// time it waited for a writer (coordinated omission).
package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/cdcrelay/cdcrelay/outbox"
)

// HeaderSize is the part of a payload the generator writes itself: run tag
// (4 bytes), sequence number (8), intended time in Unix nanoseconds (8).
const HeaderSize = 20

// Config describes one run of the generator.
type Config struct {
	Writers int  // connections writing concurrently
	Mode    Mode // how writes are timed
	// Rate is the offered load in events per second (Fixed, Adaptive).
	Rate float64
	// Batch is the events per transaction (Closed, Fixed) or the most a
	// writer groups (Adaptive).
	Batch int
	// Window is how long events are scheduled for (Fixed, Adaptive) or how
	// long writers write (Closed, when Events is zero).
	Window time.Duration
	// Events, when positive, is the number of events to write instead.
	Events int64
	// Grace is how long writers may run behind the schedule after the
	// window before the run gives up on the rest.
	Grace       time.Duration
	PayloadSize int // bytes, at least HeaderSize
	Subject     string
	Tag         uint32
	// Record keeps per-event begin and commit times (for latency runs).
	Record bool
}

// Result is what a run did.
type Result struct {
	Start     time.Time
	End       time.Time // last commit
	Written   int64     // events committed
	Txs       int64
	Scheduled int64 // events the schedule asked for (open loop)
	// Behind is set when writers had not written every scheduled event by
	// the end of the window plus Grace.
	Behind bool
	// Begin and Commit are Unix nanoseconds per event (Record only); zero
	// for an event never written.
	Begin, Commit []int64
}

// Generator runs Config against a pool. Written may be read while Run runs.
type Generator struct {
	pool    *pgxpool.Pool
	cfg     Config
	sched   *schedule
	mu      sync.Mutex // guards sched
	written atomic.Int64
	txs     atomic.Int64
	start   time.Time
}

// New checks cfg and returns a generator.
func New(pool *pgxpool.Pool, cfg Config) (*Generator, error) {
	switch {
	case cfg.Writers < 1 || cfg.Batch < 1:
		return nil, errors.New("load: need at least one writer and a batch of at least 1")
	case cfg.PayloadSize < HeaderSize:
		return nil, fmt.Errorf("load: payload of %d bytes is below the %d-byte header", cfg.PayloadSize, HeaderSize)
	case cfg.Mode != Closed && cfg.Rate <= 0:
		return nil, errors.New("load: open-loop modes need a rate")
	case cfg.Window <= 0 && cfg.Events <= 0:
		return nil, errors.New("load: need a window or an event count")
	}
	return &Generator{pool: pool, cfg: cfg, sched: newSchedule(cfg.Mode, cfg.Rate, cfg.Batch, cfg.Window, cfg.Events)}, nil
}

// Scheduled is the number of events the run will offer (open loop) or its
// cap (closed loop with Events).
func (g *Generator) Scheduled() int64 { return g.sched.total }

// Claimed is the number of events handed to writers so far: every event
// numbered from it on was begun later.
func (g *Generator) Claimed() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sched.next
}

// Written is the number of events committed so far.
func (g *Generator) Written() int64 { return g.written.Load() }

// Intended is the Unix-nanosecond time event i was due, valid once Run has
// started (Closed mode: the start).
func (g *Generator) Intended(i int64) int64 {
	return g.start.UnixNano() + int64(g.sched.intended(i))
}

// Run writes until the schedule is done, the closed-loop window ends, the
// grace runs out or ctx ends; start is the schedule's time zero.
func (g *Generator) Run(ctx context.Context, start time.Time) (Result, error) {
	g.start = start
	res := Result{Start: start}
	finite := g.sched.total != math.MaxInt64
	if finite {
		res.Scheduled = g.sched.total
	}
	if g.cfg.Record && finite {
		res.Begin = make([]int64, g.sched.total)
		res.Commit = make([]int64, g.sched.total)
	}
	deadline := start.Add(g.cfg.Window + g.cfg.Grace)
	stopAt := time.Time{}
	if g.cfg.Mode == Closed && g.cfg.Events <= 0 {
		stopAt = start.Add(g.cfg.Window)
	}
	var behind atomic.Bool
	var lastCommit atomic.Int64
	eg, ctx := errgroup.WithContext(ctx)
	for range g.cfg.Writers {
		eg.Go(func() error {
			w := newWriter(g.cfg)
			for {
				now := time.Now()
				if !stopAt.IsZero() && !now.Before(stopAt) {
					return nil
				}
				if g.cfg.Mode != Closed && now.After(deadline) {
					behind.Store(true)
					return nil
				}
				g.mu.Lock()
				first, n, wait, done := g.sched.claim(now.Sub(start))
				g.mu.Unlock()
				if done {
					return nil
				}
				if wait > 0 {
					if err := sleep(ctx, wait); err != nil {
						return nil
					}
					continue
				}
				begin := time.Now()
				if err := w.write(ctx, g, first, n); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				commit := time.Now().UnixNano()
				if res.Begin != nil {
					for i := first; i < first+int64(n); i++ {
						res.Begin[i], res.Commit[i] = begin.UnixNano(), commit
					}
				}
				g.written.Add(int64(n))
				g.txs.Add(1)
				storeMax(&lastCommit, commit)
			}
		})
	}
	err := eg.Wait()
	res.Written, res.Txs, res.Behind = g.written.Load(), g.txs.Load(), behind.Load()
	res.End = time.Unix(0, lastCommit.Load())
	if g.cfg.Mode != Closed && res.Written < res.Scheduled {
		res.Behind = true
	}
	return res, err
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// writer owns the payload buffers of one connection's transactions, reused
// from one transaction to the next.
type writer struct {
	subject string
	bufs    [][]byte
	events  []outbox.Event
}

func newWriter(cfg Config) *writer {
	w := &writer{subject: cfg.Subject, bufs: make([][]byte, cfg.Batch), events: make([]outbox.Event, cfg.Batch)}
	for i := range w.bufs {
		b := make([]byte, cfg.PayloadSize)
		for j := HeaderSize; j < len(b); j++ {
			b[j] = byte('a' + j%26)
		}
		binary.BigEndian.PutUint32(b, cfg.Tag)
		w.bufs[i] = b
	}
	return w
}

// write commits events first..first+n-1 as one transaction: one INSERT
// statement (COPY from 100 events on), which runs as its own transaction.
func (w *writer) write(ctx context.Context, g *Generator, first int64, n int) error {
	for k := range n {
		seq := first + int64(k)
		b := w.bufs[k]
		binary.BigEndian.PutUint64(b[4:], uint64(seq))
		binary.BigEndian.PutUint64(b[12:], uint64(g.Intended(seq)))
		w.events[k] = outbox.Event{Subject: w.subject, Payload: b}
	}
	if n == 1 {
		_, err := outbox.Publish(ctx, g.pool, w.subject, w.bufs[0])
		return err
	}
	_, err := outbox.PublishBatch(ctx, g.pool, w.events[:n])
	return err
}

// Decode reads the generator's header from a payload.
func Decode(payload []byte) (tag uint32, seq int64, intended int64, ok bool) {
	if len(payload) < HeaderSize {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint32(payload), int64(binary.BigEndian.Uint64(payload[4:])),
		int64(binary.BigEndian.Uint64(payload[12:])), true
}
