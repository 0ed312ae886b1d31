package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/pgcluster"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestIdleTimeoutInvalidatedSlot leaves the slot unread past PostgreSQL
// 18's idle_replication_slot_timeout (as a long NATS outage or a deployment
// with no leader would) with unpublished events behind it. The server
// invalidates the slot at the next checkpoint; the relay must recreate it
// and backfill, losing nothing.
func TestIdleTimeoutInvalidatedSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of its own")
	}
	major, err := env.Cluster(t).Major()
	if err != nil {
		t.Fatal(err)
	}
	if major < 18 {
		t.Skipf("idle_replication_slot_timeout is new in PostgreSQL 18 (this is %d)", major)
	}
	c := testenv.StartCluster(t, pgcluster.Options{Settings: map[string]string{"idle_replication_slot_timeout": "1s"}})
	h := relaytest.New(t, testenv.Attach(c.URL("postgres")), true)
	p := startProc(t, "relay-1", h.RunArgs())
	testenv.Eventually(t, time.Minute, func() error { return slotStreamed(h) })
	seq := 0
	relaytest.WriteN(t, h, 0, 500, &seq)
	h.WaitAllDelivered(time.Minute)
	p.kill()
	relaytest.WriteN(t, h, 0, 1000, &seq)
	// Reported before it bites: invalidation waits for a checkpoint.
	testenv.Eventually(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, bin, "status", "--database-url", h.URL, "--nats-url", h.NATS.URL()).CombinedOutput()
		if !strings.Contains(string(out), "idle_replication_slot_timeout (1s) invalidates it in") {
			return fmt.Errorf("status does not warn of the idle timeout:\n%s", out)
		}
		return nil
	})
	// The server invalidates idle slots at checkpoints.
	testenv.Eventually(t, time.Minute, func() error {
		var reason *string
		if _, err := h.Pool.Exec(context.Background(), `CHECKPOINT`); err != nil {
			return err
		}
		if err := h.Pool.QueryRow(context.Background(),
			`SELECT invalidation_reason FROM pg_replication_slots WHERE slot_name = 'cdcrelay'`).Scan(&reason); err != nil {
			return err
		}
		if reason == nil || *reason != "idle_timeout" {
			return fmt.Errorf("slot not invalidated by the idle timeout yet (reason %v)", reason)
		}
		return nil
	})
	p2 := startProc(t, "relay-2", h.RunArgs())
	h.WaitAllDelivered(2 * time.Minute)
	if msgs := h.CheckStream(); len(msgs) != 1500 {
		t.Fatalf("stream has %d events, want 1500", len(msgs))
	}
	if b, err := os.ReadFile(p2.log); err != nil || !strings.Contains(string(b), "idle_timeout") {
		t.Fatalf("the relay's log does not say the slot was invalidated by the idle timeout (%v):\n%s", err, b)
	}
}
