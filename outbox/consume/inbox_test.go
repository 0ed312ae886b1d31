package consume_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cdcrelay/cdcrelay/outbox/consume"
)

func TestSeen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := inboxDB(t)
	id := uuid.Must(uuid.NewV7())

	// A rolled-back transaction records nothing.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if seen, err := consume.Seen(ctx, tx, "billing", id); err != nil || seen {
		t.Fatalf("Seen in tx: %v, %v", seen, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, true, true} {
		if seen, err := consume.Seen(ctx, pool, "billing", id); err != nil || seen != want {
			t.Fatalf("call %d: seen %v, %v; want %v", i, seen, err, want)
		}
	}
	// Each consumer has its own inbox.
	if seen, err := consume.Seen(ctx, pool, "shipping", id); err != nil || seen {
		t.Fatalf("other consumer: seen %v, %v", seen, err)
	}
	if _, err := consume.Seen(ctx, pool, "billing", uuid.Nil); !errors.Is(err, consume.ErrNoEventID) {
		t.Fatalf("nil id: %v, want ErrNoEventID", err)
	}
}

func TestPruneInbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := inboxDB(t)
	if _, err := pool.Exec(ctx, `
		INSERT INTO bus.inbox (consumer, event_id, seen_at)
		SELECT 'billing', gen_random_uuid(), now() - interval '2 days' FROM generate_series(1, 250);
		INSERT INTO bus.inbox (consumer, event_id)
		SELECT 'billing', gen_random_uuid() FROM generate_series(1, 10);`); err != nil {
		t.Fatal(err)
	}
	n, err := consume.PruneInbox(ctx, pool, 24*time.Hour, 100)
	if err != nil || n != 250 {
		t.Fatalf("pruned %d, %v; want 250", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM bus.inbox`).Scan(&left); err != nil || left != 10 {
		t.Fatalf("%d rows left, %v; want 10", left, err)
	}
	if _, err := consume.PruneInbox(ctx, pool, 0, 100); err == nil {
		t.Fatal("PruneInbox with no retention did not refuse")
	}
}
