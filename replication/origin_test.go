package replication_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/migrations"
	"github.com/cdcrelay/cdcrelay/replication"
)

// slotReader is a stream the test reads up to markers it emits.
type slotReader struct {
	slot string
	c    *replication.Conn
}

func startReader(t *testing.T, d database, origin string) slotReader {
	t.Helper()
	c := connect(t, d.url)
	slot := slotName()
	if _, err := c.CreateSlot(testCtx(t), slot); err != nil {
		t.Fatalf("create slot: %v", err)
	}
	o := startOptions(c)
	o.Origin = origin
	if err := c.Start(testCtx(t), slot, 0, o); err != nil {
		t.Fatalf("start with origin %q: %v", origin, err)
	}
	return slotReader{slot: slot, c: c}
}

// upTo reads until the logical message marker arrives.
func (r slotReader) upTo(t *testing.T, marker string) {
	t.Helper()
	for {
		f := receiveXLog(t, r.c, 30*time.Second)
		if f.Data[0] == 'M' && bytes.HasSuffix(f.Data, []byte(marker)) {
			return
		}
	}
}

// decoded is what the slot's walsender has decoded so far: transactions
// and bytes handed to pgoutput (pg_stat_replication_slots, 14+; reported
// at once from 15).
func (r slotReader) decoded(t *testing.T, d database) (txns, bytes int64) {
	t.Helper()
	if err := d.pool.QueryRow(testCtx(t), `SELECT total_txns, total_bytes FROM pg_stat_replication_slots WHERE slot_name = $1`,
		r.slot).Scan(&txns, &bytes); err != nil {
		t.Fatal(err)
	}
	return txns, bytes
}

// What the relay's flip costs: WAL bytes per flipped row, with and without
// the flip origin set on the session, and what the walsender decodes for
// it, started with origin 'none' (16+) or not. With 'none', flips made
// under an origin are not decoded at all; flips without one still are, as
// is everything else.
func TestFlipOriginCost(t *testing.T) {
	d := newDatabase(t, true)
	ctx := testCtx(t)
	var version int
	if err := d.pool.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 150000 {
		t.Skip("pg_stat_replication_slots reports decoding at once from PostgreSQL 15")
	}
	readers := map[string]slotReader{"any": startReader(t, d, "")}
	if version >= replication.OriginVersion {
		readers["none"] = startReader(t, d, "none")
	}
	markers := 0
	sync := func() map[string][2]int64 {
		markers++
		marker := fmt.Sprintf("marker %d", markers)
		d.exec(t, `SELECT pg_logical_emit_message(false, 'test', $1)`, marker)
		out := map[string][2]int64{}
		for name, r := range readers {
			r.upTo(t, marker)
			txns, b := r.decoded(t, d)
			out[name] = [2]int64{txns, b}
		}
		return out
	}

	const batch, batches = 1000, 4
	d.exec(t, `INSERT INTO bus.outbox (subject, payload, headers)
		SELECT 'orders.created', convert_to(repeat('x', 256), 'UTF8'), '{"Trace-Id": "4bf92f3577b34da6"}' FROM generate_series(1, $1)`, batch*batches)
	var ids []int64
	if err := d.pool.QueryRow(ctx, `SELECT array_agg(id ORDER BY id) FROM bus.outbox`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	inserted := sync()

	origin := replication.FlipOrigin(readers["any"].slot) // on 15: does an origin alone change anything?
	if r, ok := readers["none"]; ok {
		origin = replication.FlipOrigin(r.slot)
	}
	t.Cleanup(func() { // origins are the cluster's; this runs once tagged is closed
		testenv.Eventually(t, 30*time.Second, func() error {
			return replication.DropOrigin(context.Background(), d.pool, origin) // until its backend has exited
		})
	})
	plain := connectPgx(t, d.url)
	tagged := connectPgx(t, d.url)
	if err := replication.SetupOrigin(ctx, tagged, origin); err != nil {
		t.Fatal(err)
	}
	// Half the batches from each session, the way the relay flips.
	flip := func(conn *pgx.Conn, ids []int64) (walBytes int64) {
		var before, after pglogrepl.LSN
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		for len(ids) > 0 {
			n := min(batch, len(ids))
			if _, err := conn.Exec(ctx, `UPDATE bus.outbox SET published_to_nats = true, published_at = now()
				WHERE id = ANY($1::bigint[]) AND NOT published_to_nats`, ids[:n]); err != nil {
				t.Fatal(err)
			}
			ids = ids[n:]
		}
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&after); err != nil {
			t.Fatal(err)
		}
		return int64(after - before)
	}
	half := len(ids) / 2
	walPlain := flip(plain, ids[:half])
	afterPlain := sync()
	walTagged := flip(tagged, ids[half:])
	afterTagged := sync()

	perRow := func(v int64) float64 { return float64(v) / float64(half) }
	t.Logf("PostgreSQL %d, %d flipped rows per session in %d-row statements (256-byte payload, one header)", version, half, batch)
	t.Logf("WAL per flipped row: %.0f B without an origin, %.0f B with one", perRow(walPlain), perRow(walTagged))
	for name := range readers {
		p := [2]int64{afterPlain[name][0] - inserted[name][0], afterPlain[name][1] - inserted[name][1]}
		g := [2]int64{afterTagged[name][0] - afterPlain[name][0], afterTagged[name][1] - afterPlain[name][1]}
		t.Logf("walsender origin %-4s decoded per flipped row: %.0f B (%d txns) without an origin, %.0f B (%d txns) with one; inserts: %d B per row",
			name, perRow(p[1]), p[0], perRow(g[1]), g[0], inserted[name][1]/int64(len(ids)))
		if p[1] <= 0 {
			t.Errorf("origin %s: flips without an origin decoded %d bytes, want them decoded", name, p[1])
		}
		if name == "none" && (g[0] != 0 || g[1] != 0) {
			t.Errorf("origin none: flips under the flip origin decoded %d bytes in %d transactions, want none", g[1], g[0])
		}
	}
}

// The outbox refuses rows written under a replication origin (which a
// stream filtering by origin would drop), flips under one still work, and
// OriginGuard reports since when that holds: only for the trigger `cdcrelay
// migrate` recorded, ENABLE ALWAYS. A trigger disabled by an operator is
// left alone by migrate; enabled again by hand it is not trusted until
// migrate records it anew, at a later position.
func TestOriginGuard(t *testing.T) {
	d := newDatabase(t, true)
	ctx := testCtx(t)
	if v := serverVersion(t, d); v < replication.OriginVersion {
		// Nothing would filter there: apply workers may write the outbox.
		if _, err := replication.OriginGuard(ctx, d.pool); !errors.Is(err, replication.ErrUnguarded) {
			t.Fatalf("origin guard on PostgreSQL %d: %v, want none installed", v, err)
		}
		t.Skipf("the guard is installed from PostgreSQL 16 (server is %d)", v)
	}
	since, err := replication.OriginGuard(ctx, d.pool)
	if err != nil || since == 0 {
		t.Fatalf("origin guard of a migrated database: %v, %v", since, err)
	}

	origin := fmt.Sprintf("test_guard_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		testenv.Eventually(t, 30*time.Second, func() error {
			return replication.DropOrigin(context.Background(), d.pool, origin)
		})
	})
	tagged := connectPgx(t, d.url)
	if err := replication.SetupOrigin(ctx, tagged, origin); err != nil {
		t.Fatal(err)
	}
	d.exec(t, `INSERT INTO bus.outbox (subject, payload) VALUES ('orders.created', 'plain')`)
	for _, published := range []bool{false, true} {
		_, err := tagged.Exec(ctx, `INSERT INTO bus.outbox (subject, payload, published_to_nats) VALUES ('orders.created', 'tagged', $1)`, published)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55000" || !strings.Contains(pgErr.Message, "refuses rows written under a replication origin") ||
			!strings.Contains(pgErr.Hint, "--origin-filter=false") {
			t.Fatalf("insert (published %v) under a replication origin: %v, want the guard's error", published, err)
		}
	}
	if tag, err := tagged.Exec(ctx, `UPDATE bus.outbox SET published_to_nats = true, published_at = now() WHERE NOT published_to_nats`); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("flip under a replication origin: %v, %v", tag, err)
	}

	migrate := func() (warnings []string) {
		t.Helper()
		conn := connectPgx(t, d.url)
		res, err := migrations.Apply(ctx, conn)
		if err != nil {
			t.Fatalf("migrate: %v", err)
		}
		return res.Warnings
	}
	unguarded := func(step string) {
		t.Helper()
		if lsn, err := replication.OriginGuard(ctx, d.pool); !errors.Is(err, replication.ErrUnguarded) {
			t.Fatalf("%s: origin guard %v, %v; want ErrUnguarded", step, lsn, err)
		}
	}
	migrate()
	if again, err := replication.OriginGuard(ctx, d.pool); err != nil || again != since {
		t.Fatalf("after migrating again: origin guard %v, %v; want %v as before", again, err, since)
	}

	d.exec(t, `ALTER TABLE bus.outbox DISABLE TRIGGER `+replication.GuardTrigger)
	unguarded("trigger disabled")
	if _, err := tagged.Exec(ctx, `INSERT INTO bus.outbox (subject, payload) VALUES ('orders.created', 'tagged')`); err != nil {
		t.Fatalf("insert under an origin with the trigger disabled: %v", err)
	}
	if w := migrate(); !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, replication.GuardTrigger+" on bus.outbox is disabled") }) {
		t.Errorf("migrate with the guard disabled warned %q, want it named", w)
	}
	unguarded("trigger disabled, migrated again")
	d.exec(t, `ALTER TABLE bus.outbox ENABLE ALWAYS TRIGGER `+replication.GuardTrigger)
	unguarded("trigger enabled again by hand")
	migrate()
	later, err := replication.OriginGuard(ctx, d.pool)
	if err != nil || later <= since {
		t.Fatalf("migrated after the trigger was enabled again: origin guard %v, %v; want a position after %v", later, err, since)
	}

	// A function that no longer refuses anything is no guard either; migrate
	// puts the real one back and records it anew.
	d.exec(t, `CREATE OR REPLACE FUNCTION bus.outbox_refuse_replication_origin() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS 'BEGIN RETURN NEW; END'`)
	unguarded("function replaced")
	migrate()
	if again, err := replication.OriginGuard(ctx, d.pool); err != nil || again <= later {
		t.Fatalf("migrated after the function was replaced: origin guard %v, %v; want a position after %v", again, err, later)
	}
	if _, err := tagged.Exec(ctx, `INSERT INTO bus.outbox (subject, payload) VALUES ('orders.created', 'tagged')`); err == nil {
		t.Fatal("an insert under an origin passed the guard migrate put back")
	}

	d.exec(t, `DROP TRIGGER `+replication.GuardTrigger+` ON bus.outbox`)
	unguarded("trigger dropped")
}

func serverVersion(t *testing.T, d database) int {
	t.Helper()
	var v int
	if err := d.pool.QueryRow(testCtx(t), `SELECT current_setting('server_version_num')::int`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The guard's function runs as its owner, so migrate makes sure its owner
// may call the origin test: one that may not (here: another role, without
// the grant) would make every insert fail. A superuser's migrate grants it,
// and leaves the function its owner. An outbox with partitions or
// inheritors, whose own triggers the guard does not cover, is unguarded.
func TestOriginGuardOwnerAndChildren(t *testing.T) {
	d := newDatabase(t, true)
	ctx := testCtx(t)
	if v := serverVersion(t, d); v < replication.OriginVersion {
		t.Skipf("the guard is installed from PostgreSQL 16 (server is %d)", v)
	}
	role := fmt.Sprintf("guard_owner_%d", time.Now().UnixNano())
	d.exec(t, `CREATE ROLE `+role)
	t.Cleanup(func() {
		_, _ = d.pool.Exec(context.Background(), `ALTER FUNCTION bus.outbox_refuse_replication_origin() OWNER TO CURRENT_USER`)
		_, _ = d.pool.Exec(context.Background(), `DROP ROLE `+role)
	})
	d.exec(t, `GRANT USAGE ON SCHEMA bus TO `+role)
	d.exec(t, `ALTER FUNCTION bus.outbox_refuse_replication_origin() OWNER TO `+role)
	if _, err := d.pool.Exec(ctx, `INSERT INTO bus.outbox (subject, payload) VALUES ('orders.created', 'x')`); err == nil {
		t.Fatal("insert passed a guard whose owner may not call the origin test: the test is broken")
	}
	conn := connectPgx(t, d.url)
	if _, err := migrations.Apply(ctx, conn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	d.exec(t, `INSERT INTO bus.outbox (subject, payload) VALUES ('orders.created', 'x')`)
	var owner string
	if err := d.pool.QueryRow(ctx, `SELECT proowner::regrole::text FROM pg_proc WHERE oid = 'bus.outbox_refuse_replication_origin()'::regprocedure`).Scan(&owner); err != nil || owner != role {
		t.Fatalf("the function's owner after migrate: %q (%v), want %q still", owner, err, role)
	}

	if _, err := replication.OriginGuard(ctx, d.pool); err != nil {
		t.Fatal(err)
	}
	d.exec(t, `CREATE TABLE bus.outbox_child () INHERITS (bus.outbox)`)
	if _, err := replication.OriginGuard(ctx, d.pool); !errors.Is(err, replication.ErrUnguarded) || !strings.Contains(err.Error(), "inheritors") {
		t.Fatalf("origin guard with an inheritor: %v, want ErrUnguarded", err)
	}
}
