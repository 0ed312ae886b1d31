package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The migration lock is the session advisory lock
// pg_advisory_lock(LockKey1, LockKey2). It uses the two-int4-key form, which
// PostgreSQL keeps in a lock space of its own, apart from the single-bigint
// form that the relay's leadership lock (and the poller's) uses: whatever
// leadership lock id is configured, the two can never collide.
const (
	LockKey1 int32 = 0x63646372 // "cdcr"
	LockKey2 int32 = 1          // migrations
)

// lock takes the migration lock, waiting (until ctx ends) for a concurrent
// run to finish, and returns the function that releases it.
func lock(ctx context.Context, conn *pgx.Conn, progress func(string)) (func() error, error) {
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, LockKey1, LockKey2).Scan(&got); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	if !got {
		progress("waiting for the migration lock: another cdcrelay migrate is running")
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, LockKey1, LockKey2); err != nil {
			return nil, fmt.Errorf("wait for migration lock: %w", err)
		}
	}
	return func() error {
		// Released even when ctx has ended; if the connection is gone, the
		// server has released the lock already.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, LockKey1, LockKey2); err != nil && !conn.IsClosed() {
			return fmt.Errorf("release migration lock: %w", err)
		}
		return nil
	}, nil
}
