package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/cdcrelay/cdcrelay/internal/natsserver"
	"github.com/cdcrelay/cdcrelay/internal/pgcluster"
	"github.com/cdcrelay/cdcrelay/migrations"
	"github.com/cdcrelay/cdcrelay/outbox"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/relay"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run the relay between a throwaway PostgreSQL and an embedded JetStream, and watch events flow",
		Description: `Starts PostgreSQL (wal_level=logical) in a temporary directory and a JetStream
server in another, migrates, runs the relay in this process, writes sample
events through the outbox package and prints them as they arrive from the
stream. Ctrl-C stops everything and removes both directories. Needs the
PostgreSQL server binaries (make demo installs them on Debian).`,
		Flags: []cli.Flag{
			&cli.Float64Flag{Name: "rate", Value: 2, Usage: "single events written per second"},
			&cli.IntFlag{Name: "burst", Value: 1000, Usage: "events in each burst, written in one transaction (0: no bursts)"},
			&cli.DurationFlag{Name: "burst-every", Value: 15 * time.Second, Usage: "time between bursts"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (0: at Ctrl-C)"},
			&cli.StringFlag{Name: "metrics-addr", Value: "127.0.0.1:0", Usage: "where the relay serves /metrics and /readyz (port 0 picks one)"},
		},
		Action: demo,
	}
}

// demoEvent is the JSON payload of a demo event. When it was written
// travels in a header, writtenAtHeader, as the rows' headers do.
type demoEvent struct {
	N      int    `json:"n,omitempty"`
	Burst  int    `json:"burst,omitempty"`
	Order  int    `json:"order,omitempty"`
	Amount string `json:"amount,omitempty"`
}

const writtenAtHeader = "Demo-Written-At"

const demoStream = relay.DefaultStream

var demoSubjects = []string{"demo.orders.created", "demo.orders.paid", "demo.users.signed_up"}

func demo(c *cli.Context) (err error) {
	if c.Float64("rate") <= 0 {
		return errors.New("--rate must be positive")
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	if !c.IsSet("log-level") {
		log = log.Level(zerolog.WarnLevel) // the demo's own output tells the story
	}
	ctx := c.Context
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	v := newDemoView(c.App.Writer)
	v.printf("cdcrelay demo: a throwaway PostgreSQL and JetStream with the relay between them.\nCtrl-C stops it and removes everything.\n")

	// Set-up, each step undone on the way out whatever happens.
	step := func(what string) func(string) {
		start := time.Now()
		return func(result string) {
			v.printf("  %-44s %s (%v)", what, result, time.Since(start).Round(time.Millisecond))
		}
	}
	done := step("starting PostgreSQL (wal_level=logical)")
	pg, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	pgDir := filepath.Dir(pg.DataDir())
	defer func() {
		if stopErr := pg.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stop PostgreSQL: %w", stopErr))
			return
		}
		v.printf("stopped PostgreSQL, removed %s", pgDir)
	}()
	done(fmt.Sprintf("port %d, %s", pg.Port(), pgDir))

	done = step("starting JetStream")
	natsDir, err := os.MkdirTemp("", "cdcrelay-demo-nats-")
	if err != nil {
		return err
	}
	ns, err := natsserver.Start(natsserver.Options{StoreDir: natsDir})
	if err != nil {
		_ = os.RemoveAll(natsDir)
		return fmt.Errorf("start JetStream: %w", err)
	}
	defer func() {
		ns.Stop()
		if rmErr := os.RemoveAll(natsDir); rmErr != nil {
			err = errors.Join(err, rmErr)
			return
		}
		v.printf("stopped JetStream, removed %s", natsDir)
	}()
	done(fmt.Sprintf("%s, %s", ns.URL(), natsDir))

	url := pg.URL("postgres")
	done = step("migrating (bus.outbox, publication, bus.publish)")
	if err := demoMigrate(ctx, url); err != nil {
		return err
	}
	done("ok")
	done = step(fmt.Sprintf("stream %s on %s", demoStream, "demo.>"))
	nc, js, err := dialJetStream(ns.URL(), nats.Name("cdcrelay demo"))
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: demoStream, Subjects: []string{"demo.>"}}); err != nil {
		return err
	}
	done("ok")

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	return runDemo(ctx, c, log, v, demoSetup{url: url, natsURL: ns.URL(), pool: pool, js: js})
}

func demoMigrate(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := migrations.Apply(ctx, conn); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

type demoSetup struct {
	url, natsURL string
	pool         *pgxpool.Pool
	js           jetstream.JetStream
}

// runDemo runs the relay, a writer and a reader until ctx ends, then lets
// the last events arrive and stops the relay gracefully.
func runDemo(ctx context.Context, c *cli.Context, log zerolog.Logger, v *demoView, s demoSetup) error {
	var started atomic.Pointer[relay.Relay]
	addr := make(chan string, 1)
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	relayDone := make(chan error, 1)
	go func() {
		relayDone <- runRelay(relayCtx, log, relay.Config{
			DatabaseURL: s.url, NATSURL: s.natsURL, ShutdownTimeout: 5 * time.Second,
		}, operation{metricsAddr: c.String("metrics-addr"), started: func(r *relay.Relay, a string) {
			started.Store(r)
			addr <- a
		}})
	}()
	stopAndWait := func() error {
		stopRelay()
		return <-relayDone
	}
	var metricsAddr string
	select {
	case metricsAddr = <-addr:
	case err := <-relayDone:
		return fmt.Errorf("relay: %w", err)
	}
	r := started.Load()
	wait := time.Now()
	for !r.Streaming() {
		if ctx.Err() != nil {
			return stopAndWait()
		}
		if time.Since(wait) > time.Minute {
			return errors.Join(errors.New("the relay did not start streaming within a minute"), stopAndWait())
		}
		time.Sleep(50 * time.Millisecond)
	}
	v.printf("  %-44s leader, streaming from slot %s (%v)", "relay", relay.DefaultSlot, time.Since(wait).Round(time.Millisecond))
	if metricsAddr != "" {
		v.printf("  %-44s http://%s/metrics  (and /readyz)", "metrics", metricsAddr)
	}
	burstNote := ""
	if c.Int("burst") > 0 {
		burstNote = fmt.Sprintf(", and %d in one transaction every %v", c.Int("burst"), c.Duration("burst-every"))
	}
	v.printf("\nWriting %g events/s with outbox.Publish%s. As they arrive from JetStream:\n", c.Float64("rate"), burstNote)

	work, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var g errgroup.Group
	readCtx, stopReading := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReading()
	g.Go(func() error { return demoRead(readCtx, s.js, v) })
	g.Go(func() error {
		return demoWrite(work, s.pool, v, c.Float64("rate"), c.Int("burst"), c.Duration("burst-every"))
	})
	g.Go(func() error {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-work.Done():
				return nil
			case now := <-t.C:
				snap := r.Snapshot()
				state := snap.State.String()
				if snap.Streaming {
					state = "streaming"
				}
				v.tick(snap.InFlight, state, now)
			}
		}
	})

	<-work.Done()
	// The writer stops with work; let what it wrote arrive.
	deadline := time.Now().Add(5 * time.Second)
	for w, a := v.counts(); a < w && time.Now().Before(deadline); w, a = v.counts() {
		time.Sleep(20 * time.Millisecond)
	}
	stopReading()
	err := g.Wait()
	v.summary()
	if relayErr := stopAndWait(); relayErr != nil {
		err = errors.Join(err, fmt.Errorf("relay: %w", relayErr))
	}
	v.printf("stopped the relay (in-flight events drained, position confirmed)")
	return err
}

// demoWrite writes single events at rate and, every burstEvery, a burst in
// one transaction, until ctx ends.
func demoWrite(ctx context.Context, pool *pgxpool.Pool, v *demoView, rate float64, burstSize int, burstEvery time.Duration) error {
	single := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer single.Stop()
	bursts := make(<-chan time.Time)
	if burstSize > 0 && burstEvery > 0 {
		t := time.NewTicker(burstEvery)
		defer t.Stop()
		bursts = t.C
	}
	n, burstID := 0, 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-single.C:
			n++
			payload, _ := json.Marshal(demoEvent{N: n, Order: 1000 + n, Amount: fmt.Sprintf("%d.%02d", 10+n%90, n%100)})
			at := outbox.WithHeader(writtenAtHeader, time.Now().Format(time.RFC3339Nano))
			if _, err := outbox.Publish(ctx, pool, demoSubjects[n%len(demoSubjects)], payload, at); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("write event: %w", err)
			}
			v.wrote(1)
		case <-bursts:
			burstID++
			at := time.Now()
			events := make([]outbox.Event, burstSize)
			headers := map[string][]string{writtenAtHeader: {at.Format(time.RFC3339Nano)}}
			for i := range events {
				payload, _ := json.Marshal(demoEvent{Burst: burstID, Order: i})
				events[i] = outbox.Event{Subject: "demo.orders.imported", Payload: payload, Headers: headers}
			}
			v.burstWritten(burstID, burstSize, at)
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := outbox.PublishBatch(ctx, tx, events)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("write burst: %w", err)
			}
			v.wrote(burstSize)
		}
	}
}

// demoRead reads the stream from its start and shows each message.
func demoRead(ctx context.Context, js jetstream.JetStream, v *demoView) error {
	cons, err := js.OrderedConsumer(ctx, demoStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("read the stream: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read the stream: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the stream: %w", err)
		}
		now := time.Now()
		var ev demoEvent
		at, err := time.Parse(time.RFC3339Nano, msg.Headers().Get(writtenAtHeader))
		if err != nil || json.Unmarshal(msg.Data(), &ev) != nil {
			continue
		}
		v.arrival(msg.Headers().Get(jetstream.MsgIDHeader), msg.Subject(), msg.Data(), ev, at, now)
	}
}
