package outbox_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/outbox"
)

func ExampleValidateSubject() {
	for _, subject := range []string{"orders.created", "orders.*", "orders..created", ""} {
		err := outbox.ValidateSubject(subject)
		switch {
		case err == nil:
			fmt.Printf("%q ok\n", subject)
		case errors.Is(err, outbox.ErrSubjectWildcard):
			fmt.Printf("%q has a wildcard\n", subject)
		default:
			fmt.Println(err)
		}
	}
	// Output:
	// "orders.created" ok
	// "orders.*" has a wildcard
	// subject starts or ends with a dot, or has an empty token (..): "orders..created"
	// empty subject
}

// Publish inside the transaction that makes the change the event announces.
// (Not run: it needs a database with the cdcrelay schema.)
func ExamplePublish() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/shop")
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE orders SET state = 'paid' WHERE id = $1`, 42); err != nil {
			return err
		}
		id, err := outbox.Publish(ctx, tx, "orders.paid", []byte(`{"order": 42}`),
			outbox.WithHeader("Content-Type", "application/json"))
		if err != nil {
			return err
		}
		fmt.Println("event", id, "commits with the order")
		return nil
	})
	if err != nil {
		panic(err)
	}
}

// PublishBatch writes many events in one round trip.
// (Not run: it needs a database with the cdcrelay schema.)
func ExamplePublishBatch() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, "postgres://localhost/shop")
	if err != nil {
		panic(err)
	}
	defer conn.Close(ctx)

	ids, err := outbox.PublishBatch(ctx, conn, []outbox.Event{
		{Subject: "orders.shipped", Payload: []byte(`{"order": 42}`)},
		{Subject: "orders.shipped", Payload: []byte(`{"order": 43}`), Headers: map[string][]string{"Trace-Id": {"abc"}}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(ids), "events")
}
