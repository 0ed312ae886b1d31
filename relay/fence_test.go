package relay_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// With synchronous_standby_names = '*' the relay's own walsender would be the
// synchronous standby: commits would wait for the relay, which waits for
// them to commit. Start-up refuses, naming the setting.
func TestSynchronousReplicationOnTheRelayIsRefused(t *testing.T) {
	c := ownCluster(t, nil)
	h := relaytest.NewAt(t, env, c.URL("postgres"), true)
	// Set only now: with no standby at all, every commit would wait.
	ctx := context.Background()
	if _, err := h.Pool.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = '*'`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Pool.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		var v string
		if err := h.Pool.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names')`).Scan(&v); err != nil || v != "*" {
			return fmt.Errorf("synchronous_standby_names = %q, %v", v, err)
		}
		return nil
	})
	r := h.Start()
	exited, err := r.Exited(time.Minute)
	if !exited {
		t.Fatal("the relay started with itself as the synchronous standby")
	}
	if err == nil || !strings.Contains(err.Error(), "synchronous_standby_names") {
		t.Fatalf("run returned %v; want a refusal naming synchronous_standby_names", err)
	}
}

// A same-named slot that another deployment created while the relay was
// between terms is not the relay's: it refuses, and neither streams from it
// nor drops it.
func TestForeignSlotIsNeitherUsedNorDropped(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 1, 10, &seq)
	h.WaitAllDelivered(time.Minute)
	ctx := context.Background()

	// Take leadership away from the relay and keep it while swapping slots.
	conn, err := pgx.Connect(ctx, h.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	testenv.Eventually(t, time.Minute, func() error {
		if _, err := h.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = $1`, h.Cfg.Election.LockID); err != nil {
			return err
		}
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, h.Cfg.Election.LockID).Scan(&got); err != nil {
			return err
		}
		if !got {
			return errors.New("the relay took the lock back first")
		}
		return nil
	})
	testenv.Eventually(t, 30*time.Second, func() error {
		_, err := h.Pool.Exec(ctx, `SELECT pg_drop_replication_slot('cdcrelay')`)
		return err
	})
	if _, err := h.Pool.Exec(ctx, `SELECT pg_create_logical_replication_slot('cdcrelay', 'test_decoding')`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, h.Cfg.Election.LockID); err != nil {
		t.Fatal(err)
	}
	exited, err := r.Exited(time.Minute)
	if !exited {
		t.Fatal("the relay kept running on a slot that is not its own")
	}
	if err == nil || !strings.Contains(err.Error(), "not a pgoutput slot") {
		t.Fatalf("run returned %v; want a refusal naming the foreign slot", err)
	}
	var plugin string
	if err := h.Pool.QueryRow(ctx, `SELECT plugin FROM pg_replication_slots WHERE slot_name = 'cdcrelay'`).Scan(&plugin); err != nil || plugin != "test_decoding" {
		t.Fatalf("foreign slot: plugin %q, %v; want it left alone", plugin, err)
	}
}
