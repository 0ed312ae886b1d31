package outboxtoinbox

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/migrations"
	"github.com/cdcrelay/cdcrelay/outbox/consume"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// TestPaymentsBookedOnceAcrossRestarts: the orders service pays 600 orders
// while the relay is stopped and started again and the ledger dies between
// committing a booking and acknowledging it; every payment is booked once.
func TestPaymentsBookedOnceAcrossRestarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbURL := env.DB(t)
	migrate(t, dbURL)
	pool := testenv.Pool(t, dbURL)
	if _, err := pool.Exec(ctx, Schema); err != nil {
		t.Fatal(err)
	}
	ns := env.NATS(t)
	_, js := connect(t, ns.URL())
	// What `cdcrelay stream ensure --stream bus --subjects 'orders.>'` sets up.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       "bus",
		Subjects:   []string{"orders.>"},
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
		// The relay publishes in batches.
		AllowBatchPublish: true,
	}); err != nil {
		t.Fatal(err)
	}
	ledgerCfg := consume.Config{Stream: "bus", Durable: "ledger", FilterSubjects: []string{SubjectOrderPaid}, AckWait: 2 * time.Second}
	const total, crashAt = 600, 100

	rel := startRelay(t, dbURL, ns.URL())

	// The first ledger instance loses its NATS connection inside its
	// 100th booking: the booking commits, its ack cannot be sent.
	nc1, js1 := connect(t, ns.URL())
	first := &Ledger{Name: "ledger", Pool: pool, Consumer: newConsumer(t, js1, ledgerCfg)}
	var bookings atomic.Int64
	first.inBooking = func(*consume.Delivery) {
		if bookings.Add(1) == crashAt {
			nc1.Close()
		}
	}
	firstDone := make(chan error, 1)
	go func() { firstDone <- first.Run(ctx) }()

	// The orders service pays orders throughout: 200 at once, the rest once
	// the first ledger instance has crashed, so that the relay is stopped
	// and started again while payments are being written and relayed.
	var paid atomic.Int64
	resume := make(chan struct{})
	payDone := make(chan error, 1)
	go func() {
		for id := int64(1); id <= total; id++ {
			if id == 201 {
				select {
				case <-resume:
				case <-ctx.Done():
					payDone <- ctx.Err()
					return
				}
			}
			if _, err := PayOrder(ctx, pool, id, id*100); err != nil {
				payDone <- err
				return
			}
			paid.Store(id)
		}
		payDone <- nil
	}()
	waitPaid := func(n int64) {
		t.Helper()
		testenv.Eventually(t, time.Minute, func() error {
			if got := paid.Load(); got < n {
				return fmt.Errorf("%d of %d orders paid", got, n)
			}
			return nil
		})
	}

	select {
	case err := <-firstDone:
		t.Logf("first ledger instance stopped: %v", err)
	case <-ctx.Done():
		t.Fatal("the first ledger instance never reached its crash")
	}
	close(resume)
	waitPaid(250)
	rel.stop(t)
	stoppedAt := paid.Load()
	waitPaid(400) // with no relay running
	second := &Ledger{Name: "ledger", Pool: pool, Consumer: newConsumer(t, connectJS(t, ns.URL()), ledgerCfg)}
	runCtx, stopSecond := context.WithCancel(ctx)
	secondDone := make(chan error, 1)
	go func() { secondDone <- second.Run(runCtx) }()
	startRelay(t, dbURL, ns.URL())
	t.Logf("relay stopped after %d payments, started again after %d", stoppedAt, paid.Load())
	if err := <-payDone; err != nil {
		t.Fatal(err)
	}

	testenv.Eventually(t, 2*time.Minute, func() error {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger`).Scan(&n); err != nil {
			return err
		}
		if n < total {
			return fmt.Errorf("%d of %d payments booked", n, total)
		}
		return nil
	})
	stopSecond()
	if err := <-secondDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("second ledger instance: %v", err)
	}

	var booked, orders, inbox int
	var bookedSum, paidSum int64
	if err := pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM ledger), (SELECT count(DISTINCT order_id) FROM ledger),
		       (SELECT count(*) FROM bus.inbox WHERE consumer = 'ledger'),
		       (SELECT coalesce(sum(amount_cents), 0) FROM ledger), (SELECT sum(amount_cents) FROM orders)`,
	).Scan(&booked, &orders, &inbox, &bookedSum, &paidSum); err != nil {
		t.Fatal(err)
	}
	if booked != total || orders != total || inbox != total || bookedSum != paidSum {
		t.Fatalf("%d bookings of %d orders, %d inbox rows, %d booked of %d paid; want %d of each, sums equal",
			booked, orders, inbox, bookedSum, paidSum, total)
	}
	// The booking that committed without its ack came back and was skipped.
	if second.Skipped.Load() == 0 {
		t.Fatalf("no redelivery was skipped (booked %d + %d)", first.Booked.Load(), second.Booked.Load())
	}
	t.Logf("first instance booked %d; second booked %d and skipped %d redeliveries",
		first.Booked.Load(), second.Booked.Load(), second.Skipped.Load())
}

func migrate(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := migrations.Apply(ctx, conn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

// connect opens a NATS connection of its own, as a separate process would.
func connect(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func connectJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	_, js := connect(t, url)
	return js
}

func newConsumer(t *testing.T, js jetstream.JetStream, cfg consume.Config) *consume.Consumer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := consume.New(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
