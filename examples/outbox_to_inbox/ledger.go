package outboxtoinbox

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/outbox/consume"
)

// Ledger books every OrderPaid event exactly once.
type Ledger struct {
	// Name is the inbox's consumer name; by convention the durable's name.
	Name     string
	Pool     *pgxpool.Pool
	Consumer *consume.Consumer

	// Booked and Skipped count events whose booking ran, and redeliveries
	// the inbox recognised.
	Booked, Skipped atomic.Int64

	// inBooking, when set, runs inside each booking's transaction: tests
	// use it to cut the connection between commit and ack.
	inBooking func(*consume.Delivery)
}

// Run books deliveries until ctx ends or a delivery cannot be handled.
// Returning leaves the current delivery unacknowledged, so it comes again
// to whichever instance runs next: that is the crash the inbox is for.
func (l *Ledger) Run(ctx context.Context) error {
	for {
		d, err := l.Consumer.Next(ctx)
		if err != nil {
			return err
		}
		var ev OrderPaid
		if err := json.Unmarshal(d.Data, &ev); err != nil {
			// It will never parse: do not let it come back forever.
			if err := d.Term(); err != nil {
				return err
			}
			continue
		}
		booked, err := consume.Apply(ctx, l.Pool, l.Name, d, func(ctx context.Context, tx pgx.Tx) error {
			if l.inBooking != nil {
				l.inBooking(d)
			}
			_, err := tx.Exec(ctx, `INSERT INTO ledger (order_id, amount_cents, event_id) VALUES ($1, $2, $3)`,
				ev.OrderID, ev.AmountCents, d.EventID)
			return err
		})
		if err != nil {
			return fmt.Errorf("book order %d: %w", ev.OrderID, err)
		}
		if booked {
			l.Booked.Add(1)
		} else {
			l.Skipped.Add(1)
		}
	}
}
