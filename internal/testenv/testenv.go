// Package testenv gives integration tests real servers: one throwaway
// PostgreSQL cluster per test package (started in TestMain), a fresh database
// per test, and an embedded JetStream server per test that can be stopped and
// restarted on the same store. CDCRELAY_TEST_DATABASE_URL and
// CDCRELAY_TEST_NATS_URL point the tests at existing servers instead; tests
// that must restart a server are skipped then. CDCRELAY_TEST_PG_BIN names the
// directory of the PostgreSQL server binaries (initdb, pg_ctl, postgres) the
// clusters are started from; unset, the one on PATH or the newest Debian
// package's (see pgcluster.FindBin).
package testenv

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/internal/natsserver"
	"github.com/cdcrelay/cdcrelay/internal/pgcluster"
)

// Env is the set of servers shared by one test package.
type Env struct {
	cluster  *pgcluster.Cluster // nil when an external server is used
	adminURL string
	seq      atomic.Int64
}

// Run starts the package's servers, stores the Env in *out, runs the tests and
// exits. Call it from TestMain:
//
//	var env *testenv.Env
//	func TestMain(m *testing.M) { testenv.Run(m, &env) }
func Run(m *testing.M, out **Env) {
	env, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
	*out = env
	code := m.Run()
	if err := env.close(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: stop postgres:", err)
	}
	os.Exit(code)
}

// PGBinEnv names the directory of the server binaries the tests use.
const PGBinEnv = "CDCRELAY_TEST_PG_BIN"

func start() (*Env, error) {
	if u := os.Getenv("CDCRELAY_TEST_DATABASE_URL"); u != "" {
		return &Env{adminURL: u}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, ClusterOptions(pgcluster.Options{}))
	if err != nil {
		return nil, err
	}
	return &Env{cluster: c, adminURL: c.URL("postgres")}, nil
}

// ClusterOptions completes opts for a test cluster: the server binaries
// named by CDCRELAY_TEST_PG_BIN, and a wal_sender_timeout short enough that
// a relay which stops answering is caught by tests (opts.Settings win).
func ClusterOptions(opts pgcluster.Options) pgcluster.Options {
	if opts.Bin == "" {
		opts.Bin = os.Getenv(PGBinEnv)
	}
	settings := map[string]string{"wal_sender_timeout": "20s"}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	opts.Settings = settings
	return opts
}

// StartCluster starts a cluster of the test's own (from ClusterOptions),
// stopped and removed when the test ends.
func StartCluster(tb testing.TB, opts pgcluster.Options) *pgcluster.Cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, ClusterOptions(opts))
	if err != nil {
		tb.Fatalf("start postgres: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Logf("stop postgres: %v", err)
		}
	})
	return c
}

// Attach is an Env on a server the caller runs (a primary and its standby,
// say, named together in adminURL): DB creates the test databases there.
func Attach(adminURL string) *Env { return &Env{adminURL: adminURL} }

func (e *Env) close() error {
	if e.cluster == nil {
		return nil
	}
	return e.cluster.Stop()
}

// AdminURL is a superuser URL for the maintenance database.
func (e *Env) AdminURL() string { return e.adminURL }

// Cluster is the package's own cluster; it skips the test when the tests run
// against an external server, which they must not restart.
func (e *Env) Cluster(tb testing.TB) *pgcluster.Cluster {
	tb.Helper()
	if e.cluster == nil {
		tb.Skip("needs a PostgreSQL the tests own (CDCRELAY_TEST_DATABASE_URL is set)")
	}
	return e.cluster
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// DB creates an empty database for the test, dropped (with its replication
// slots) when the test ends, and returns its URL.
func (e *Env) DB(tb testing.TB) string {
	tb.Helper()
	name := unsafeName.ReplaceAllString(strings.ToLower(tb.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t_%s_%d_%d", name, os.Getpid()%100000, e.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		tb.Fatalf("connect admin: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() { e.dropDB(tb, name) })
	return replaceDB(e.adminURL, name)
}

func (e *Env) dropDB(tb testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		tb.Logf("drop database %s: connect: %v", name, err)
		return
	}
	defer admin.Close(ctx)
	// A slot keeps its walsender (and WAL) alive; drop them with the database.
	_, _ = admin.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, name)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = admin.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, name)
		var n int
		_ = admin.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = $1`, name).Scan(&n)
		if (err == nil && n == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		tb.Logf("drop database %s: %v", name, err)
	}
}

// replaceDB swaps the database name in a postgres:// URL, keeping the rest
// as written (several hosts included); a key/value DSN gets a dbname.
func replaceDB(url, db string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url + " dbname=" + db
	}
	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i:]
	}
	authority, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + authority + "/" + db + query
}

// Pool opens a pool on url, closed when the test ends.
func Pool(tb testing.TB, url string) *pgxpool.Pool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		tb.Fatalf("open pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// NATS is an embedded JetStream server for one test, or the external one.
type NATS struct {
	srv *natsserver.Server // nil when external
	url string
}

// NATS starts an embedded JetStream server (stopped when the test ends), or
// returns the external one named by CDCRELAY_TEST_NATS_URL.
func (e *Env) NATS(tb testing.TB) *NATS {
	tb.Helper()
	if u := os.Getenv("CDCRELAY_TEST_NATS_URL"); u != "" {
		return &NATS{url: u}
	}
	srv, err := natsserver.Start(natsserver.Options{StoreDir: tb.TempDir()})
	if err != nil {
		tb.Fatalf("start nats: %v", err)
	}
	tb.Cleanup(srv.Stop)
	return &NATS{srv: srv, url: srv.URL()}
}

// URL is the client URL.
func (n *NATS) URL() string { return n.url }

func (n *NATS) own(tb testing.TB) *natsserver.Server {
	tb.Helper()
	if n.srv == nil {
		tb.Skip("needs a NATS server the tests own (CDCRELAY_TEST_NATS_URL is set)")
	}
	return n.srv
}

// Stop shuts the server down, keeping its store.
func (n *NATS) Stop(tb testing.TB) { tb.Helper(); n.own(tb).Stop() }

// Start starts a stopped server again on the same port and store.
func (n *NATS) Start(tb testing.TB) {
	tb.Helper()
	if err := n.own(tb).Start(); err != nil {
		tb.Fatalf("restart nats: %v", err)
	}
}

// Restart stops and starts the server.
func (n *NATS) Restart(tb testing.TB) { tb.Helper(); n.Stop(tb); n.Start(tb) }

// Eventually polls cond every 20ms until it returns nil or the deadline
// passes, then fails the test with cond's last error.
func Eventually(tb testing.TB, within time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
