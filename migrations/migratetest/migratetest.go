// Package migratetest gives integration tests a fresh database that has
// cdcrelay's schema, for packages that need bus.outbox to exist.
package migratetest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/migrations"
)

// DB creates a database for the test (dropped when it ends, see
// testenv.Env.DB), applies migrations.Apply to it and returns its URL.
func DB(tb testing.TB, env *testenv.Env) string {
	tb.Helper()
	url := env.DB(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := migrations.Apply(ctx, conn); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return url
}

// Pool is DB with a pool on it, closed when the test ends.
func Pool(tb testing.TB, env *testenv.Env) *pgxpool.Pool {
	tb.Helper()
	return testenv.Pool(tb, DB(tb, env))
}
