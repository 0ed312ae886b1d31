package relay_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox"
	"github.com/cdcrelay/cdcrelay/relay"
)

// Creating a slot waits for every transaction that had an xid when it began.
// The relay must say who blocks it, bound the wait, and retry, then stream
// once the blockers are gone.
func TestSlotCreationBlockedIsReportedAndRetried(t *testing.T) {
	c := ownCluster(t, map[string]string{"max_prepared_transactions": "5"})
	h := relaytest.NewAt(t, env, c.URL("postgres"), true)
	ctx := context.Background()
	if _, err := h.Pool.Exec(ctx, `CREATE TABLE side (v int)`); err != nil {
		t.Fatal(err)
	}
	idle, err := h.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = idle.Rollback(ctx) }()
	if _, err := idle.Exec(ctx, `INSERT INTO side VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	var idlePID int32
	if err := idle.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&idlePID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Pool.Exec(ctx, `BEGIN; INSERT INTO side VALUES (2); PREPARE TRANSACTION 'stuck_gid'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = h.Pool.Exec(context.Background(), `ROLLBACK PREPARED 'stuck_gid'`) })

	h.Cfg.SlotCreateTimeout = 3 * time.Second
	r := h.Start()
	waitNotReady(t, r.Relay, fmt.Sprintf("pid %d (idle in transaction", idlePID))
	waitStalled(t, r.Relay, relay.StallSlotCreation)
	if err := idle.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitNotReady(t, r.Relay, `prepared transaction "stuck_gid"`)
	if _, err := h.Pool.Exec(ctx, `ROLLBACK PREPARED 'stuck_gid'`); err != nil {
		t.Fatal(err)
	}
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 1, 20, &seq)
	h.WaitAllDelivered(time.Minute)
	waitReady(t, r.Relay, 10*time.Second)
}

// A published event whose row the flip never sees is confirmed all the same;
// that must show in the metric and in readiness, not only in a log line.
func TestFlipGivingUpIsLoud(t *testing.T) {
	h := relaytest.New(t, env, true)
	ctx := context.Background()
	// The trigger swallows the flip of one subject's rows, as a row that
	// never becomes visible would.
	if _, err := h.Pool.Exec(ctx, `
CREATE FUNCTION pg_temp_skip_flip() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.subject = 'orders.ghost' THEN RETURN NULL; END IF; RETURN NEW; END $$;
CREATE TRIGGER skip_flip BEFORE UPDATE ON bus.outbox FOR EACH ROW EXECUTE FUNCTION pg_temp_skip_flip();`); err != nil {
		t.Fatal(err)
	}
	r := h.Start()
	h.WaitStreaming(r)
	if _, err := outbox.Publish(ctx, h.Pool, "orders.ghost", []byte("boo")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		if n := r.Relay.Snapshot().FlipsGivenUp; n != 1 {
			return fmt.Errorf("%d flips given up, want 1", n)
		}
		return nil
	})
	waitStalled(t, r.Relay, relay.StallFlipGaveUp)
	if ok, why := r.Relay.Ready(); ok || !strings.Contains(why, "never became visible") {
		t.Fatalf("Ready() = %v, %q; want not ready, naming the rows the flip gave up on", ok, why)
	}
}

func waitNotReady(t *testing.T, r *relay.Relay, want string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		ok, why := r.Ready()
		if ok || !strings.Contains(why, want) {
			return fmt.Errorf("Ready() = %v, %q; want not ready with %q", ok, why, want)
		}
		return nil
	})
}

func waitReady(t *testing.T, r *relay.Relay, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, func() error {
		if ok, why := r.Ready(); !ok {
			return errors.New(why)
		}
		return nil
	})
}

func waitStalled(t *testing.T, r *relay.Relay, cause string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		for _, s := range r.Snapshot().Stalls {
			if s.Cause == cause {
				return nil
			}
		}
		return fmt.Errorf("no %s stall in %+v", cause, r.Snapshot().Stalls)
	})
}

// Publishing that keeps failing is a stall: readiness names it while the
// relay retries, and clears once NATS is back.
func TestPublishFailuresShowInReadiness(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 1, 10, &seq)
	h.WaitAllDelivered(time.Minute)
	h.NATS.Stop(t)
	relaytest.WriteN(t, h, 1, 10, &seq)
	waitNotReady(t, r.Relay, "publishing to NATS fails and is retried")
	waitStalled(t, r.Relay, relay.StallPublish)
	h.NATS.Start(t)
	h.WaitAllDelivered(time.Minute)
	waitReady(t, r.Relay, 30*time.Second)
}
