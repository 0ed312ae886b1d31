// Package outboxtoinbox is the end-to-end example of the service-side
// client: an orders service publishes an event in the transaction that
// records a payment (outbox.Publish), cdcrelay relays committed events to
// JetStream, and a ledger service consumes them and books each payment
// exactly once (consume.Apply over the inbox), however often it is
// redelivered. example_test.go runs all three against real servers and
// restarts the relay and the ledger in the middle.
package outboxtoinbox

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/outbox"
)

// SubjectOrderPaid is the subject of OrderPaid events.
const SubjectOrderPaid = "orders.paid"

// Schema holds both services' tables. They share one database here only to
// keep the example small; the ledger's effects and its inbox must share a
// database, the orders service's tables need not.
const Schema = `
CREATE TABLE IF NOT EXISTS orders (
	id           bigint PRIMARY KEY,
	amount_cents bigint NOT NULL,
	paid_at      timestamptz NOT NULL DEFAULT now()
);
-- Deliberately no unique key on order_id: the inbox alone keeps bookings single.
CREATE TABLE IF NOT EXISTS ledger (
	order_id     bigint NOT NULL,
	amount_cents bigint NOT NULL,
	event_id     uuid NOT NULL
);`

// OrderPaid is the event body.
type OrderPaid struct {
	OrderID     int64 `json:"orderId"`
	AmountCents int64 `json:"amountCents"`
}

// PayOrder records a payment and publishes OrderPaid in one transaction: the
// event exists if and only if the payment committed.
func PayOrder(ctx context.Context, pool *pgxpool.Pool, orderID, amountCents int64) (uuid.UUID, error) {
	payload, err := json.Marshal(OrderPaid{OrderID: orderID, AmountCents: amountCents})
	if err != nil {
		return uuid.Nil, fmt.Errorf("pay order %d: %w", orderID, err)
	}
	var id uuid.UUID
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO orders (id, amount_cents) VALUES ($1, $2)`, orderID, amountCents); err != nil {
			return err
		}
		id, err = outbox.Publish(ctx, tx, SubjectOrderPaid, payload, outbox.WithHeader("Content-Type", "application/json"))
		return err
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("pay order %d: %w", orderID, err)
	}
	return id, nil
}
