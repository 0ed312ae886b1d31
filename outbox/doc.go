// Package outbox is what a service imports to publish events through
// cdcrelay: it inserts each event into bus.outbox inside the service's own
// PostgreSQL transaction, so the event exists if and only if the business
// change it announces commits. The cdcrelay relay then streams committed
// rows to NATS JetStream. This package never talks to NATS.
//
//	tx, err := pool.Begin(ctx)
//	...
//	if _, err := tx.Exec(ctx, `UPDATE orders SET state = 'paid' WHERE id = $1`, id); err != nil { ... }
//	eventID, err := outbox.Publish(ctx, tx, "orders.paid", payload, outbox.WithHeader("Content-Type", "application/json"))
//	...
//	err = tx.Commit(ctx)
//
// Subjects and header names are checked here first, by the same rules as
// the table's CHECK constraints, so a bad one fails with an error that
// errors.Is can test (ErrSubjectWildcard, ...) before any round trip.
// Every event gets a UUIDv7 event id, which the relay sends as the
// Nats-Msg-Id header: JetStream deduplicates on it.
package outbox
