package migrations

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a connection to url that records the server's notices.
func connect(t *testing.T, url string) (*pgx.Conn, *[]string) {
	t.Helper()
	ctx := testCtx(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	notices := new([]string)
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { *notices = append(*notices, n.Message) }
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, notices
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(testCtx(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
}

func queryOne[T any](t *testing.T, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(testCtx(t), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
	return v
}

// embedded lists the migrations this build carries.
func embedded(t *testing.T) []Migration {
	t.Helper()
	all, err := load()
	if err != nil {
		t.Fatal(err)
	}
	var ms []Migration
	for _, m := range all {
		ms = append(ms, m.Migration)
	}
	return ms
}

func mustApply(t *testing.T, conn *pgx.Conn) Result {
	t.Helper()
	res, err := Apply(testCtx(t), conn)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

// schemaOf describes every object cdcrelay owns, so two runs can be compared.
// Function bodies are included: CREATE OR REPLACE with the same body leaves
// the description alone.
func schemaOf(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	return queryOne[string](t, conn, `
		SELECT string_agg(line, E'\n' ORDER BY line) FROM (
		  SELECT format('column %s.%s %s notnull=%s default=%s', c.relname, a.attname,
		                format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) AS line
		    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
		   WHERE c.relnamespace = 'bus'::regnamespace
		  UNION ALL
		  SELECT format('relation %s %s options=%s', relname, relkind, reloptions) FROM pg_class
		   WHERE relnamespace = 'bus'::regnamespace
		  UNION ALL
		  SELECT format('constraint %s %s %s valid=%s', conrelid::regclass, conname, pg_get_constraintdef(oid), convalidated)
		    FROM pg_constraint WHERE connamespace = 'bus'::regnamespace
		  UNION ALL
		  SELECT format('index %s', pg_get_indexdef(indexrelid)) FROM pg_index
		   WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'bus'::regnamespace)
		  UNION ALL
		  SELECT format('function %s %s', oid::regprocedure, pg_get_functiondef(oid)) FROM pg_proc
		   WHERE pronamespace = 'bus'::regnamespace
		  UNION ALL
		  SELECT format('publication %s ins=%s upd=%s del=%s trunc=%s all=%s', pubname, pubinsert, pubupdate, pubdelete, pubtruncate, puballtables)
		    FROM pg_publication
		  UNION ALL
		  SELECT format('published %s %s.%s', pubname, schemaname, tablename) FROM pg_publication_tables
		) AS s`)
}
