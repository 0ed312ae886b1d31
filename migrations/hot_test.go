package migrations

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// The relay's flip must stay a HOT update: no index may name
// published_to_nats or published_at (key or predicate), and fillfactor must
// leave room on each page for a new version of every row on it (flips come in
// batches that cover whole pages). This test fails when someone adds such an
// index or raises the fillfactor.
func TestFlipIsHOT(t *testing.T) {
	conn, _ := connect(t, env.DB(t))
	mustApply(t, conn)
	exec(t, conn, `INSERT INTO bus.outbox (subject, payload) SELECT 'orders.' || i, '\x01' FROM generate_series(1, 200) AS i`)
	ids := queryOne[[]int64](t, conn, `SELECT array_agg(id ORDER BY id) FROM bus.outbox`)

	// The relay flips in batches of acknowledged ids.
	for lo := 0; lo < len(ids); lo += 50 {
		exec(t, conn, `UPDATE bus.outbox SET published_to_nats = true, published_at = now() WHERE id = ANY($1)`, ids[lo:lo+50])
	}
	// Statistics reach pg_stat_user_tables when the backend flushes them
	// (PostgreSQL 15+: on demand; earlier: within about half a second).
	exec(t, conn, `SELECT pg_stat_force_next_flush()`)
	testenv.Eventually(t, 10*time.Second, func() error {
		var upd, hot int64
		if err := conn.QueryRow(testCtx(t), `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'bus.outbox'::regclass`).Scan(&upd, &hot); err != nil {
			return err
		}
		if upd < int64(len(ids)) {
			return fmt.Errorf("%d updates counted so far, want %d", upd, len(ids))
		}
		if hot != upd {
			return fmt.Errorf("%d of %d flips were HOT updates, want all", hot, upd)
		}
		return nil
	})
}

// The flip must not evaluate the subject and header rules: PostgreSQL runs
// every CHECK of a table on every UPDATE, so each one must settle on
// published_to_nats first (migration 0005). This test fails when someone adds
// a CHECK to bus.outbox without that guard.
func TestFlipSkipsRules(t *testing.T) {
	conn, _ := connect(t, env.DB(t))
	mustApply(t, conn)
	checks := queryOne[[]string](t, conn, `SELECT array_agg(format('%s %s', conname, pg_get_expr(conbin, conrelid)) ORDER BY conname)
		FROM pg_constraint WHERE conrelid = 'bus.outbox'::regclass AND contype = 'c'`)
	if len(checks) != 8 {
		t.Errorf("bus.outbox has %d CHECK constraints, want the 8 rules: %q", len(checks), checks)
	}
	for _, c := range checks {
		if _, expr, _ := strings.Cut(c, " "); !strings.HasPrefix(expr, "(published_to_nats OR ") {
			t.Errorf("CHECK %s does not start with published_to_nats OR: every flip would evaluate it", c)
		}
	}
}
