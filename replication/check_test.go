package replication_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/pgcluster"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/replication"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	type setup func(t *testing.T, d database, cfg *replication.CheckConfig) replication.Querier
	asRole := func(attrs string, grants ...string) setup {
		return func(t *testing.T, d database, _ *replication.CheckConfig) replication.Querier {
			role, u := newRole(t, d, attrs)
			for _, g := range grants {
				d.exec(t, strings.ReplaceAll(g, "$role", role))
			}
			return connectPgx(t, u)
		}
	}
	sql := func(stmts ...string) setup {
		return func(t *testing.T, d database, _ *replication.CheckConfig) replication.Querier {
			for _, s := range stmts {
				d.exec(t, s)
			}
			return d.pool
		}
	}
	usePublication := func(name, create string) setup {
		return func(t *testing.T, d database, cfg *replication.CheckConfig) replication.Querier {
			d.exec(t, create)
			cfg.Publication = name
			return d.pool
		}
	}
	foreignSlot := func(create string) setup {
		return func(t *testing.T, d database, cfg *replication.CheckConfig) replication.Querier {
			admin := connectPgx(t, env.AdminURL())
			if _, err := admin.Exec(testCtx(t), create, cfg.Slot); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, _ = admin.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, cfg.Slot)
			})
			return d.pool
		}
	}
	relayGrants := []string{
		`GRANT USAGE ON SCHEMA bus TO $role`,
		`GRANT SELECT, UPDATE ON bus.outbox TO $role`,
		`GRANT INSERT, SELECT (event_id, replayed_at) ON bus.dead_letter TO $role`,
		`GRANT UPDATE (outbox_id, error, dead_lettered_at, replayed_at) ON bus.dead_letter TO $role`,
		`GRANT SELECT, INSERT, UPDATE ON bus.relay_slot TO $role`,
	}

	cases := []struct {
		name       string
		noSchema   bool
		noPub      bool
		minVersion int
		delete     bool
		setup      setup
		want       string // in Problem; empty: Check passes
	}{
		{name: "superuser passes"},
		{name: "relay role passes", setup: asRole("REPLICATION", relayGrants...)},
		{name: "missing publication", noPub: true, want: "publication cdcrelay_outbox does not exist"},
		{name: "publication without the table", setup: usePublication("empty_pub", `CREATE PUBLICATION empty_pub`),
			want: "publication empty_pub does not include bus.outbox"},
		{name: "role without REPLICATION", setup: asRole("", relayGrants...), want: "may not open replication connections"},
		{name: "role without UPDATE", want: "lacks UPDATE on bus.outbox", setup: asRole("REPLICATION",
			`GRANT USAGE ON SCHEMA bus TO $role`, `GRANT SELECT ON bus.outbox TO $role`, `GRANT INSERT ON bus.dead_letter TO $role`)},
		{name: "role without INSERT on dead letters", want: "lacks INSERT on bus.dead_letter", setup: asRole("REPLICATION",
			`GRANT USAGE ON SCHEMA bus TO $role`, `GRANT SELECT, UPDATE ON bus.outbox TO $role`)},
		{name: "role with the dead-letter grants of before a refused replay waited again",
			want: "lacks SELECT (event_id, replayed_at), UPDATE (outbox_id, error, dead_lettered_at, replayed_at) on bus.dead_letter",
			setup: asRole("REPLICATION", `GRANT USAGE ON SCHEMA bus TO $role`, `GRANT SELECT, UPDATE ON bus.outbox TO $role`,
				`GRANT INSERT, SELECT (event_id) ON bus.dead_letter TO $role`, `GRANT SELECT, INSERT, UPDATE ON bus.relay_slot TO $role`)},
		{name: "role without DELETE when pruning", delete: true, want: "lacks DELETE on bus.outbox", setup: asRole("REPLICATION", relayGrants...)},
		{name: "role without schema USAGE", want: "may not use schema bus", setup: asRole("REPLICATION",
			`GRANT SELECT, UPDATE ON bus.outbox TO $role`, `GRANT INSERT ON bus.dead_letter TO $role`)},
		{name: "no outbox", noSchema: true, noPub: true, want: "table bus.outbox does not exist"},
		{name: "outbox lacks a column", setup: sql(`ALTER TABLE bus.outbox DROP COLUMN published_at`),
			want: "table bus.outbox lacks column(s) published_at"},
		{name: "publication publishes updates", setup: sql(`ALTER PUBLICATION cdcrelay_outbox SET (publish = 'insert, update')`),
			want: "also publishes update"},
		{name: "publication without inserts", setup: sql(`ALTER PUBLICATION cdcrelay_outbox SET (publish = 'update')`),
			want: "does not publish inserts"},
		{name: "publication with another table", setup: sql(`ALTER PUBLICATION cdcrelay_outbox ADD TABLE public.noise`),
			want: "also publishes public.noise"},
		{name: "publication for all tables", noPub: true,
			setup: sql(`CREATE PUBLICATION cdcrelay_outbox FOR ALL TABLES WITH (publish = 'insert')`), want: "is FOR ALL TABLES"},
		{name: "row filter", minVersion: 150000,
			setup: sql(`ALTER PUBLICATION cdcrelay_outbox SET TABLE bus.outbox WHERE (subject <> 'x')`), want: "has a row filter on bus.outbox"},
		{name: "column list", minVersion: 150000,
			setup: sql(`ALTER PUBLICATION cdcrelay_outbox SET TABLE bus.outbox (id, event_id, subject, payload, created_at)`),
			want:  "leaves column(s) headers of bus.outbox out"},
		{name: "slot with another plugin", want: "uses output plugin test_decoding",
			setup: func(t *testing.T, d database, cfg *replication.CheckConfig) replication.Querier {
				d.exec(t, `SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, cfg.Slot)
				return d.pool
			}},
		{name: "slot in another database", want: "belongs to database postgres",
			setup: foreignSlot(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`)},
		{name: "physical slot", want: "is a physical slot", setup: foreignSlot(`SELECT pg_create_physical_replication_slot($1)`)},
		{name: "walsender timeout shorter than two status intervals", want: "wal_sender_timeout is 4s",
			setup: func(t *testing.T, d database, cfg *replication.CheckConfig) replication.Querier {
				cfg.StatusInterval = 5 * time.Second
				return asRole("REPLICATION", append(relayGrants, `ALTER ROLE $role SET wal_sender_timeout = '4s'`)...)(t, d, cfg)
			}},
		{name: "walsender timeout long enough", setup: func(t *testing.T, d database, cfg *replication.CheckConfig) replication.Querier {
			cfg.StatusInterval = 5 * time.Second
			return asRole("REPLICATION", append(relayGrants, `ALTER ROLE $role SET wal_sender_timeout = '10s'`)...)(t, d, cfg)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var d database
			if tc.noSchema {
				u := env.DB(t)
				d = database{url: u, pool: testenvPool(t, u)}
			} else {
				d = newDatabase(t, !tc.noPub)
			}
			var version int
			if err := d.pool.QueryRow(testCtx(t), `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
				t.Fatal(err)
			}
			if version < tc.minVersion {
				t.Skipf("needs server_version_num >= %d", tc.minVersion)
			}
			cfg := replication.CheckConfig{Slot: slotName(), Publication: publication, Delete: tc.delete}
			var q replication.Querier = d.pool
			if tc.setup != nil {
				q = tc.setup(t, d, &cfg)
			}
			err := replication.Check(testCtx(t), q, cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("check: %v", err)
				}
				return
			}
			var ce *replication.CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("check returned %v, want a *CheckError", err)
			}
			t.Log(err)
			fixed := ce.Fix != "" || ce.Setting != "" || ce.Unmigrated
			if !strings.Contains(ce.Problem, tc.want) || !fixed || strings.Contains(err.Error(), "\n") {
				t.Fatalf("check: %q, want one line with %q and a fix", err, tc.want)
			}
			if strings.Contains(err.Error(), "--") {
				t.Errorf("check: %q names a flag: libraries state facts, cmd/cdcrelay names flags", err)
			}
		})
	}
}

// wal_level cannot change in the shared cluster, so this test starts its own
// with wal_level=replica.
func TestCheckWalLevel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	t.Parallel()
	env.Cluster(t) // skips against an external server, as this needs a cluster of its own too
	ctx := testCtx(t)
	c := testenv.StartCluster(t, pgcluster.Options{Settings: map[string]string{"wal_level": "replica"}})
	q := connectPgx(t, c.URL("postgres"))
	err := replication.Check(ctx, q, replication.CheckConfig{Slot: "cdcrelay", Publication: publication})
	want := "wal_level is replica, logical decoding needs logical: set wal_level = logical in postgresql.conf"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("check: %v, want %q...", err, want)
	}
}
