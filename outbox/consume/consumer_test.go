package consume_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox/consume"
)

// TestCrashBeforeAckRedelivers: an instance fetches and dies without acking;
// a new instance on the same durable gets the same message again.
func TestCrashBeforeAckRedelivers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.NATS(t)
	_, admin := connect(t, ns.URL())
	createStream(t, admin, "ORDERS", "orders.>")
	id := publish(t, admin, "orders.created", `{"id":1}`)
	cfg := consume.Config{Stream: "ORDERS", Durable: "billing", AckWait: time.Second}

	ncA, jsA := connect(t, ns.URL())
	a := newConsumer(t, jsA, cfg)
	first, err := a.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.EventID != id || first.Subject != "orders.created" || string(first.Data) != `{"id":1}` || first.Seq != 1 || first.NumDelivered != 1 {
		t.Fatalf("first delivery %+v, want event %s", first, id)
	}
	a.Close()
	ncA.Close() // the crash: no ack ever sent

	_, jsB := connect(t, ns.URL())
	b := newConsumer(t, jsB, cfg)
	again, err := b.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.EventID != id || again.Seq != 1 || again.NumDelivered != 2 || string(again.Data) != `{"id":1}` {
		t.Fatalf("redelivery %+v, want event %s delivered twice", again, id)
	}
	if err := again.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 1 || info.NumAckPending != 0 {
		t.Fatalf("after ack: ack floor %d, pending %d", info.AckFloor.Stream, info.NumAckPending)
	}
}

// TestInboxAppliesRedeliveredEventOnce: the first instance commits the
// effect and crashes before acking; the redelivery is skipped by the inbox.
func TestInboxAppliesRedeliveredEventOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := inboxDB(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE credits (event_id uuid NOT NULL, amount int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	credit := func(d *consume.Delivery) func(context.Context, pgx.Tx) error {
		return func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO credits VALUES ($1, 10)`, d.EventID)
			return err
		}
	}
	ns := env.NATS(t)
	_, admin := connect(t, ns.URL())
	createStream(t, admin, "ORDERS", "orders.>")
	id := publish(t, admin, "orders.paid", `{"amount":10}`)
	cfg := consume.Config{Stream: "ORDERS", Durable: "billing", AckWait: time.Second}

	ncA, jsA := connect(t, ns.URL())
	a := newConsumer(t, jsA, cfg)
	d, err := a.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if seen, err := consume.Seen(ctx, tx, "billing", d.EventID); err != nil || seen {
		t.Fatalf("first Seen: %v, %v", seen, err)
	}
	if err := credit(d)(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a.Close()
	ncA.Close() // crash between commit and ack

	_, jsB := connect(t, ns.URL())
	b := newConsumer(t, jsB, cfg)
	d, err = b.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.EventID != id || d.NumDelivered != 2 {
		t.Fatalf("redelivery %+v", d)
	}
	applied, err := consume.Apply(ctx, pool, "billing", d, credit(d))
	if err != nil || applied {
		t.Fatalf("Apply on the redelivery: applied %v, %v; want skipped", applied, err)
	}
	var credits, inbox int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM credits), (SELECT count(*) FROM bus.inbox)`).Scan(&credits, &inbox); err != nil {
		t.Fatal(err)
	}
	if credits != 1 || inbox != 1 {
		t.Fatalf("%d credits and %d inbox rows, want 1 and 1", credits, inbox)
	}
	info, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 1 || info.NumAckPending != 0 {
		t.Fatalf("Apply did not ack: ack floor %d, pending %d", info.AckFloor.Stream, info.NumAckPending)
	}

	// A second event goes through Apply once, effect and ack together.
	publish(t, admin, "orders.paid", `{"amount":10}`)
	d, err = b.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if applied, err := consume.Apply(ctx, pool, "billing", d, credit(d)); err != nil || !applied {
		t.Fatalf("Apply on a new event: applied %v, %v", applied, err)
	}
}

func TestNakAndTerm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.NATS(t)
	_, js := connect(t, ns.URL())
	createStream(t, js, "ORDERS", "orders.>")
	publish(t, js, "orders.created", "x")
	c := newConsumer(t, js, consume.Config{Stream: "ORDERS", Durable: "billing", FilterSubjects: []string{"orders.created"}})

	d, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Nak(0); err != nil {
		t.Fatal(err)
	}
	d, err = c.Next(ctx) // far sooner than the 30 s AckWait
	if err != nil {
		t.Fatal(err)
	}
	if d.Seq != 1 || d.NumDelivered != 2 {
		t.Fatalf("after Nak: %+v", d)
	}
	if err := d.Term(); err != nil {
		t.Fatal(err)
	}
	// Terminated counts as done: the ack floor passes it, nothing is pending.
	testenv.Eventually(t, 10*time.Second, func() error {
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream != 1 || info.NumAckPending != 0 {
			return fmt.Errorf("ack floor %d, pending %d", info.AckFloor.Stream, info.NumAckPending)
		}
		return nil
	})
	c.Close()
	if _, err := c.Next(ctx); !errors.Is(err, consume.ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
}

func TestConsumerConfigMistakes(t *testing.T) {
	ctx := context.Background()
	ns := env.NATS(t)
	_, js := connect(t, ns.URL())
	for _, tc := range []struct {
		cfg  consume.Config
		want string
	}{
		{consume.Config{Durable: "d"}, "no Stream"},
		{consume.Config{Stream: "S"}, "no Durable"},
		{consume.Config{Stream: "S", Durable: "a.b"}, "consumer name"},
		{consume.Config{Stream: "S", Durable: "d", FilterSubjects: []string{""}}, "empty subject"},
		{consume.Config{Stream: "S", Durable: "d", MaxAckPending: 10, Prefetch: 20}, "Prefetch 20"},
		{consume.Config{Stream: "S", Durable: "d", MaxDeliver: -1}, "MaxDeliver"},
	} {
		if _, err := consume.New(ctx, js, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want error containing %q", tc.cfg, err, tc.want)
		}
	}
}

// TestNextRidesOutNATSRestart: a consumer waiting in Next across a server
// restart receives what is published afterwards.
func TestNextRidesOutNATSRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.NATS(t)
	_, admin := connect(t, ns.URL())
	createStream(t, admin, "ORDERS", "orders.>")
	_, js := connect(t, ns.URL())
	c := newConsumer(t, js, consume.Config{Stream: "ORDERS", Durable: "billing"})

	got := make(chan *consume.Delivery, 1)
	errs := make(chan error, 1)
	go func() {
		d, err := c.Next(ctx)
		if err != nil {
			errs <- err
			return
		}
		got <- d
	}()
	ns.Restart(t)
	var id uuid.UUID
	testenv.Eventually(t, 30*time.Second, func() error {
		var err error
		id, err = tryPublish(admin, "orders.created", "after restart")
		return err
	})
	select {
	case d := <-got:
		if d.EventID != id {
			t.Fatalf("got %+v, want event %s", d, id)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	case err := <-errs:
		t.Fatalf("Next across a restart: %v", err)
	case <-ctx.Done():
		t.Fatal("nothing delivered after the restart")
	}
}
