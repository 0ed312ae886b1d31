package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// A session idle in transaction blocks the slot's creation: /readyz and
// status both name it, and the relay streams once it ends.
func TestStatusNamesWhatBlocksSlotCreation(t *testing.T) {
	h := relaytest.New(t, env, true)
	ctx := context.Background()
	idle, err := h.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = idle.Rollback(ctx) }()
	var (
		pid int32
		xid string
	)
	// An xid makes the transaction one that slot creation waits for.
	if err := idle.QueryRow(ctx, `SELECT pg_backend_pid(), pg_current_xact_id()::text`).Scan(&pid, &xid); err != nil {
		t.Fatal(err)
	}
	relay := startCLI(t, "run", "--database-url", h.URL, "--nats-url", h.NATS.URL(),
		"--metrics-addr", "127.0.0.1:0", "--lock-id", "4343")
	addr := relay.metricsAddr(t)
	want := fmt.Sprintf("pid %d (idle in transaction", pid)
	testenv.Eventually(t, time.Minute, func() error {
		if code, body := httpGet(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, want) {
			return fmt.Errorf("/readyz = %d %q, want 503 naming %q", code, body, want)
		}
		return nil
	})

	testenv.Eventually(t, time.Minute, func() error {
		st, code, out := statusJSON(t, "--database-url", h.URL, "--nats-url", h.NATS.URL(), "--lock-id", "4343")
		if code != 1 || !strings.Contains(st.Slot.CreationBlockedBy, want) || !strings.Contains(strings.Join(st.Problems, "\n"), want) {
			return fmt.Errorf("status does not name the blocker %q yet:\n%s", want, out)
		}
		return nil
	})
	if err := idle.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, addr, "leader streaming")
}
