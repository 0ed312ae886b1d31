package replication_test

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/migrations/migratetest"
	"github.com/cdcrelay/cdcrelay/replication"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

const publication = "cdcrelay_outbox"

// database is one test's database with the outbox schema (and, unless
// withoutPublication, the publication).
type database struct {
	url  string
	pool *pgxpool.Pool
}

func newDatabase(t *testing.T, withPublication bool) database {
	t.Helper()
	u := migratetest.DB(t, env)
	pool := testenv.Pool(t, u)
	ctx := testCtx(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE public.noise (id bigserial PRIMARY KEY, v text)`); err != nil {
		t.Fatalf("create noise table: %v", err)
	}
	if !withPublication {
		if _, err := pool.Exec(ctx, `DROP PUBLICATION `+publication); err != nil {
			t.Fatalf("drop publication: %v", err)
		}
	}
	return database{url: u, pool: pool}
}

func (d database) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := d.pool.Exec(testCtx(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (d database) name(t *testing.T) string {
	t.Helper()
	var n string
	if err := d.pool.QueryRow(testCtx(t), `SELECT current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, u string) *replication.Conn {
	t.Helper()
	c, err := replication.Connect(testCtx(t), u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

var roleSeq atomic.Int64

// newRole creates a login role (roles are cluster-wide: the name is unique
// and the role is dropped when the test ends) and returns its name and a URL
// for d's database as that role.
func newRole(t *testing.T, d database, attrs string) (string, string) {
	t.Helper()
	name := fmt.Sprintf("cdcrelay_test_%d_%d", time.Now().UnixNano()%1_000_000_000, roleSeq.Add(1))
	ctx := testCtx(t)
	if _, err := d.pool.Exec(ctx, `CREATE ROLE `+name+` LOGIN `+attrs); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = d.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, name)
		if _, err := d.pool.Exec(ctx, `DROP OWNED BY `+name); err != nil {
			t.Logf("drop owned by %s: %v", name, err)
		}
		if _, err := d.pool.Exec(ctx, `DROP ROLE `+name); err != nil {
			t.Logf("drop role %s: %v", name, err)
		}
	})
	u, err := url.Parse(d.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(name)
	return name, u.String()
}

// grantRelay gives role what the relay needs on the outbox schema.
func grantRelay(t *testing.T, d database, role string) {
	t.Helper()
	d.exec(t, `GRANT USAGE ON SCHEMA bus TO `+role)
	d.exec(t, `GRANT SELECT, UPDATE ON bus.outbox TO `+role)
	d.exec(t, `GRANT INSERT ON bus.dead_letter TO `+role)
}

func connectPgx(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(testCtx(t), u)
	if err != nil {
		t.Fatalf("connect %s: %v", u, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

var slotSeq atomic.Int64

// slotName is a slot name unique in the cluster: slots, unlike the tables,
// are shared by every database of the test cluster.
func slotName() string {
	return fmt.Sprintf("relay_%d_%d", time.Now().UnixNano()%1_000_000_000, slotSeq.Add(1))
}

func testenvPool(t testing.TB, u string) *pgxpool.Pool { return testenv.Pool(t, u) }
