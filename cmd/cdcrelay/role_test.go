package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox"
	"github.com/cdcrelay/cdcrelay/replication"
)

// The relay runs end to end, retention included, as the role that
// sql/role.sql.example creates, and no more privileged one.
func TestRelayUnderLeastPrivilegeRole(t *testing.T) {
	h := relaytest.New(t, env, true)
	ctx := context.Background()
	recipe, err := os.ReadFile("../../sql/role.sql.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Pool.Exec(ctx, string(recipe)); err != nil {
		t.Fatalf("apply the role recipe: %v", err)
	}
	t.Cleanup(func() {
		// The role is the cluster's: drop what it holds in the test's database first.
		conn, err := pgx.Connect(context.Background(), h.URL)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `DROP OWNED BY cdcrelay; DROP ROLE cdcrelay`); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	var super, repl bool
	if err := h.Pool.QueryRow(ctx, `SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = 'cdcrelay'`).Scan(&super, &repl); err != nil || super || !repl {
		t.Fatalf("role: superuser %v, replication %v, %v", super, repl, err)
	}
	// A published row past retention, which the relay must prune.
	if _, err := h.Pool.Exec(ctx, `INSERT INTO bus.outbox (subject, payload, created_at, published_to_nats, published_at)
VALUES ('orders.old', '\x00', now() - interval '30 days', true, now() - interval '30 days')`); err != nil {
		t.Fatal(err)
	}

	u, err := url.Parse(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("cdcrelay", "change-me")
	p := startCLI(t, "--log-format", "json", "run", "--database-url", u.String(), "--nats-url", h.NATS.URL(),
		"--metrics-addr", "127.0.0.1:0")
	addr := p.metricsAddr(t)
	waitReadyz(t, addr, "leader streaming")

	for i := 0; i < 20; i++ {
		if _, err := outbox.Publish(ctx, h.Pool, "orders.created", relaytest.Payload(1, i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := outbox.Publish(ctx, h.Pool, "nowhere.at.all", []byte("dead")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		var unpublished, old, dead int
		err := h.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM bus.outbox WHERE NOT published_to_nats),
  (SELECT count(*) FROM bus.outbox WHERE subject = 'orders.old'), (SELECT count(*) FROM bus.dead_letter)`).Scan(&unpublished, &old, &dead)
		if err != nil || unpublished > 0 || old > 0 || dead != 1 {
			return fmt.Errorf("unpublished %d, past retention %d, dead letters %d (%v)", unpublished, old, dead, err)
		}
		return nil
	})
	// On 16+ the recipe's grants let the relay skip its own flips.
	var version int
	if err := h.Pool.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	filter := "\ncdcrelay_origin_filter 0\n"
	if version >= replication.OriginVersion {
		filter = "\ncdcrelay_origin_filter 1\n"
	}
	testenv.Eventually(t, time.Minute, func() error {
		m := scrapeText(t, addr)
		for _, want := range []string{filter, "cdcrelay_events_published_total 20", "cdcrelay_events_dead_lettered_total 1",
			"cdcrelay_outbox_pruned_total 1", "cdcrelay_retention_failures_total 0", "cdcrelay_heartbeat_age_seconds ",
			`cdcrelay_metrics_query_errors_total{query="slot"} 0`, `cdcrelay_slot_active{slot="cdcrelay"} 1`} {
			if !strings.Contains(m, want) {
				return fmt.Errorf("/metrics lacks %q", want)
			}
		}
		return nil
	})
	if code := p.stop(t); code != 0 {
		t.Fatalf("run exited with %d:\n%s", code, p.errOut.String())
	}
	if logs := p.errOut.String(); strings.Contains(logs, `"level":"warn"`) || strings.Contains(logs, `"level":"error"`) {
		t.Errorf("the relay warned running as the role:\n%s", logs)
	}
	if logs := p.errOut.String(); strings.Contains(logs, "pg_log_standby_snapshot") {
		t.Errorf("the recipe's role may not keep the slot's restart point close:\n%s", logs)
	}
	msgs := testenv.StreamMessages(t, h.NATS.URL(), "bus")
	if len(msgs) != 20 {
		t.Errorf("stream has %d messages, want 20", len(msgs))
	}

	// Without DELETE, retention refuses to start rather than fail every minute.
	if _, err := h.Pool.Exec(ctx, `REVOKE DELETE ON bus.outbox FROM cdcrelay`); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "run", "--database-url", u.String(), "--nats-url", h.NATS.URL(), "--metrics-addr", "")
	if want := "cdcrelay: --retention: role cdcrelay lacks DELETE on bus.outbox: GRANT DELETE ON bus.outbox TO cdcrelay, or run with --retention 0\n"; code != 1 || errOut != want {
		t.Errorf("run without DELETE: status %d, stderr %q", code, errOut)
	}
}
