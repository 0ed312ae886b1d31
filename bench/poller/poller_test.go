package poller_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/bench/poller"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/migrations"
	"github.com/cdcrelay/cdcrelay/outbox"
	"github.com/cdcrelay/cdcrelay/publish"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// setup gives a migrated database with the poller's trigger and a stream.
func setup(t *testing.T) (dbURL, natsURL string) {
	t.Helper()
	ctx := context.Background()
	dbURL = env.DB(t)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := poller.Install(ctx, conn.PgConn()); err != nil {
		t.Fatal(err)
	}
	ns := env.NATS(t)
	_, js := testenv.JetStream(t, ns.URL())
	if _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: "bus", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	return dbURL, ns.URL()
}

// run starts n replicas and returns how many became leader so far, and a
// stop function that waits for them.
func run(t *testing.T, n int, cfg poller.Config) (*atomic.Int32, func()) {
	t.Helper()
	var leads atomic.Int32
	cfg.OnLead = func() { leads.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		p, err := poller.New(cfg, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				t.Errorf("poller: %v", err)
			}
		}()
	}
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return &leads, stop
}

func TestPublishesEveryRowOnceWithItsEventID(t *testing.T) {
	dbURL, natsURL := setup(t)
	pool := testenv.Pool(t, dbURL)
	ctx := context.Background()
	// Small batches, so several cycles are needed.
	leads, _ := run(t, 2, poller.Config{DatabaseURL: dbURL, NATSURL: natsURL, LockID: 42, BatchSize: 7})

	want := map[string]string{} // event id -> subject
	events := make([]outbox.Event, 30)
	for i := range events {
		events[i] = outbox.Event{Subject: fmt.Sprintf("t.batch.%d", i), Payload: []byte{byte(i)}}
	}
	ids, err := outbox.PublishBatch(ctx, pool, events)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		want[id.String()] = events[i].Subject
	}
	// Single rows after the first batch: their NOTIFY wakes the poller.
	for i := range 5 {
		id, err := outbox.Publish(ctx, pool, "t.one", []byte{byte(i)}, outbox.WithHeader("Trace", "x"))
		if err != nil {
			t.Fatal(err)
		}
		want[id.String()] = "t.one"
	}

	testenv.Eventually(t, 30*time.Second, func() error {
		var left int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM bus.outbox WHERE NOT published_to_nats`).Scan(&left); err != nil {
			return err
		}
		if left > 0 {
			return fmt.Errorf("%d rows not flipped", left)
		}
		return nil
	})
	msgs := testenv.StreamMessages(t, natsURL, "bus")
	if len(msgs) != len(want) {
		t.Fatalf("stream has %d messages, want %d", len(msgs), len(want))
	}
	for _, m := range msgs {
		subject, ok := want[m.ID]
		if !ok {
			t.Fatalf("message %d has Nats-Msg-Id %q, not an event id (or a repeat)", m.Seq, m.ID)
		}
		if m.Subject != subject {
			t.Fatalf("event %s went to %s, want %s", m.ID, m.Subject, subject)
		}
		if subject == "t.one" && m.Header.Get("Trace") != "x" {
			t.Fatalf("event %s lost its header: %v", m.ID, m.Header)
		}
		delete(want, m.ID)
	}
	if got := leads.Load(); got != 1 {
		t.Fatalf("%d replicas led, want exactly 1", got)
	}
}

func TestStandbyTakesOver(t *testing.T) {
	dbURL, natsURL := setup(t)
	pool := testenv.Pool(t, dbURL)
	ctx := context.Background()
	cfg := poller.Config{DatabaseURL: dbURL, NATSURL: natsURL, LockID: 43}
	leads1, stop1 := run(t, 1, cfg)
	testenv.Eventually(t, 10*time.Second, func() error {
		if leads1.Load() == 0 {
			return fmt.Errorf("no leader yet")
		}
		return nil
	})
	leads2, _ := run(t, 1, cfg)
	stop1()
	if _, err := outbox.Publish(ctx, pool, "t.after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		var left int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM bus.outbox WHERE NOT published_to_nats`).Scan(&left); err != nil {
			return err
		}
		if left > 0 || leads2.Load() != 1 {
			return fmt.Errorf("%d rows left, standby led %d times", left, leads2.Load())
		}
		return nil
	})
}
