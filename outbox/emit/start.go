package emit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Start connects to NATS and starts publishing. It never fails the host: when
// NATS is unreachable or the stream is missing it logs once, leaves the
// emitter disabled (events are counted as dropped, reason publish) and keeps
// retrying in the background with capped back-off until it connects or Close
// is called. Start after a successful Start does nothing; after a failed one
// it tries again at once. ctx bounds this call's own attempt only.
//
// The only error is ErrClosed, for a Start after Close.
func (e *Emitter) Start(ctx context.Context) error {
	e.life.Lock()
	if e.lifeCtx.Err() != nil {
		e.life.Unlock()
		return ErrClosed
	}
	if e.nc != nil {
		e.life.Unlock()
		return nil
	}
	e.wg.Add(1)
	e.life.Unlock()

	err := e.attempt(ctx)
	e.wg.Done()
	if err == nil {
		return nil
	}

	e.life.Lock()
	defer e.life.Unlock()
	if e.nc != nil || e.lifeCtx.Err() != nil {
		return nil // the retry loop won the race, or Close came meanwhile
	}
	if !e.logged {
		e.logged = true
		e.log.Warn().Err(err).
			Str(logKeyStream, e.cfg.Stream).
			Str(logKeySubjects, e.prefix+">").
			Msg("event emitter disabled: cannot publish to NATS; events are dropped until a background retry connects")
	}
	if !e.retrying {
		e.retrying = true
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.retryLoop()
		}()
	}
	return nil
}

// Field names of the emitter's log lines.
const (
	logKeyStream   = "stream"
	logKeySubjects = "subjects"
)

// retryLoop attempts to connect with doubling, jittered back-off until it
// succeeds, another attempt does, or the emitter is closed.
func (e *Emitter) retryLoop() {
	defer func() {
		e.life.Lock()
		e.retrying = false
		e.life.Unlock()
	}()
	wait := e.cfg.RetryMin
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-e.lifeCtx.Done():
			return
		case <-t.C:
		}
		if e.attempt(e.lifeCtx) == nil {
			return
		}
		wait = min(2*wait, e.cfg.RetryMax)
		// Jitter spreads the retries of many hosts after a shared outage.
		t.Reset(wait/2 + rand.N(wait/2+1))
	}
}

// attempt makes one connection, checks the stream and, unless another
// attempt got there first or the emitter was closed, starts the pipeline.
// A nil error means there is nothing left to try.
func (e *Emitter) attempt(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	defer cancel()
	stop := context.AfterFunc(e.lifeCtx, cancel)
	defer stop()

	nc, js, err := e.connect(ctx)
	if err != nil {
		return err
	}
	e.life.Lock()
	defer e.life.Unlock()
	if e.nc != nil || e.lifeCtx.Err() != nil {
		nc.Close()
		return nil
	}
	e.startPipeline(nc, js)
	if e.logged {
		e.log.Info().Str(logKeyStream, e.cfg.Stream).Str(logKeySubjects, e.prefix+">").
			Msg("event emitter connected to NATS; events are published again")
	}
	return nil
}

// connect dials NATS and checks that the configured stream exists and
// captures the emitter's subjects.
func (e *Emitter) connect(ctx context.Context) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(e.cfg.Name),
		nats.Timeout(e.cfg.ConnectTimeout),
		// Once up, the connection rides out outages by itself.
		nats.MaxReconnects(-1),
		// Async errors surface as drop counts; the default handler would
		// print to stderr.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}
	if e.cfg.ReconnectBufSize != 0 {
		opts = append(opts, nats.ReconnectBufSize(e.cfg.ReconnectBufSize))
	}
	opts = append(opts, e.cfg.NATSOptions...)
	nc, err := nats.Connect(e.cfg.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(e.cfg.AckTimeout),
		// The acks channel bounds what is in flight; never stall below it.
		jetstream.WithPublishAsyncMaxPending(e.cfg.InFlight+2),
	)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream context: %w", err)
	}
	if err := checkStream(ctx, js, e.cfg.Stream, e.prefix+">"); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// checkStream makes sure stream exists and its subjects overlap subjects, so
// a typo in either shows up at start-up rather than as ack drops.
func checkStream(ctx context.Context, js jetstream.JetStream, stream, subjects string) error {
	names := js.StreamNames(ctx, jetstream.WithStreamListSubject(subjects))
	var found []string
	for name := range names.Name() {
		found = append(found, name)
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("list the streams for %s: %w", subjects, err)
	}
	switch {
	case slices.Contains(found, stream):
		return nil
	case len(found) == 0:
		return fmt.Errorf("no stream captures %s (want stream %q)", subjects, stream)
	default:
		return fmt.Errorf("%s is captured by stream(s) %q, not %q", subjects, found, stream)
	}
}
