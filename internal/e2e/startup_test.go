package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/pgcluster"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// refuse runs `cdcrelay run` expecting it to refuse to start: a non-zero
// exit within a minute, and a last line of output that names the fix.
func refuse(t *testing.T, args []string, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("cdcrelay %v: want a failed start, got %v\n%s", args, err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "cdcrelay: ") {
		t.Fatalf("last line %q is not the one-line error; output:\n%s", last, out.String())
	}
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Fatalf("error line %q does not say %q", last, w)
		}
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "{") {
			t.Fatalf("more than one line of error output:\n%s", out.String())
		}
	}
	t.Logf("refused: %s", last)
}

func TestStartupRefusesMisconfiguration(t *testing.T) {
	h := relaytest.New(t, env, true)
	ctx := context.Background()

	t.Run("no database url", func(t *testing.T) {
		refuse(t, []string{"run", "--nats-url", h.NATS.URL()}, "--database-url")
	})
	t.Run("unparseable database url", func(t *testing.T) {
		refuse(t, []string{"run", "--database-url", "postgres://%zz", "--nats-url", h.NATS.URL()}, "database URL")
	})
	t.Run("unreachable database", func(t *testing.T) {
		refuse(t, []string{"run", "--database-url", "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2", "--nats-url", h.NATS.URL()},
			"connect to PostgreSQL", "--database-url")
	})
	t.Run("unreachable nats", func(t *testing.T) {
		refuse(t, []string{"run", "--database-url", h.URL, "--nats-url", "nats://127.0.0.1:1"}, "connect to NATS", "--nats-url")
	})
	t.Run("missing stream", func(t *testing.T) {
		refuse(t, []string{"run", "--database-url", h.URL, "--nats-url", h.NATS.URL(), "--stream", "nosuch"},
			"stream nosuch", "stream ensure")
	})
	t.Run("not migrated", func(t *testing.T) {
		bare := env.DB(t)
		refuse(t, []string{"run", "--database-url", bare, "--nats-url", h.NATS.URL()}, "migrate")
	})
	t.Run("role without replication", func(t *testing.T) {
		role := fmt.Sprintf("norepl_%d", rand.IntN(1<<30))
		if _, err := h.Pool.Exec(ctx, `CREATE ROLE `+role+` LOGIN; GRANT USAGE ON SCHEMA bus TO `+role+`;
GRANT SELECT, UPDATE ON bus.outbox TO `+role+`; GRANT INSERT ON bus.dead_letter TO `+role); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = h.Pool.Exec(ctx, `DROP OWNED BY `+role+`; DROP ROLE `+role)
		})
		url := strings.Replace(h.URL, "postgres://postgres@", "postgres://"+role+"@", 1)
		refuse(t, []string{"run", "--database-url", url, "--nats-url", h.NATS.URL()}, "REPLICATION")
	})
	t.Run("wal_level replica", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts its own cluster")
		}
		c := testenv.StartCluster(t, pgcluster.Options{Settings: map[string]string{"wal_level": "replica"}})
		refuse(t, []string{"run", "--database-url", c.URL("postgres"), "--nats-url", h.NATS.URL()}, "wal_level", "logical")
	})
}
