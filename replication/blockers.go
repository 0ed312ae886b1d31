package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Blocker is a transaction a backend waits for: a session (PID set) or a
// prepared transaction (GID set).
type Blocker struct {
	PID       int32
	GID       string
	State     string // pg_stat_activity.state, e.g. "idle in transaction"; "prepared"
	XactStart time.Time
	Query     string // the session's last statement, cut to 200 bytes
}

func (b Blocker) String() string {
	age := time.Since(b.XactStart).Round(time.Second)
	if b.GID != "" {
		return fmt.Sprintf("prepared transaction %q (prepared %s ago; COMMIT PREPARED or ROLLBACK PREPARED it)", b.GID, age)
	}
	q := strings.Join(strings.Fields(b.Query), " ")
	return fmt.Sprintf("pid %d (%s, transaction open %s, last query %q)", b.PID, b.State, age, q)
}

// Describe joins blockers into one line.
func Describe(bs []Blocker) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = b.String()
	}
	return strings.Join(parts, "; ")
}

// A backend creating a logical slot waits, through the transaction-id lock,
// for every transaction that had an xid when creation began: pg_blocking_pids
// names the one it waits for now, and 0 for a prepared transaction.
const blockersSQL = `
SELECT a.pid, '', coalesce(a.state, ''), coalesce(a.xact_start, now()), left(coalesce(a.query, ''), 200)
FROM unnest(pg_blocking_pids($1)) AS b(pid) JOIN pg_stat_activity a ON a.pid = b.pid
UNION ALL
SELECT 0, p.gid, 'prepared', p.prepared, ''
FROM pg_prepared_xacts p WHERE 0 = ANY (pg_blocking_pids($1))
ORDER BY 4`

// Blockers returns the transactions backend pid waits for (none when it
// does not wait on another transaction).
func Blockers(ctx context.Context, q Querier, pid uint32) ([]Blocker, error) {
	rows, err := q.Query(ctx, blockersSQL, int32(pid))
	if err != nil {
		return nil, fmt.Errorf("find what backend %d waits for: %w", pid, err)
	}
	bs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Blocker, error) {
		var b Blocker
		err := r.Scan(&b.PID, &b.GID, &b.State, &b.XactStart, &b.Query)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("find what backend %d waits for: %w", pid, err)
	}
	return bs, nil
}

// Drop drops the slot on an ordinary connection (so that it can run on the
// leader's lock connection, fenced by the lock), first ending a backend that
// still reads it. A missing slot is not an error.
func Drop(ctx context.Context, q Querier, name string) error {
	for {
		if err := TerminateActive(ctx, q, name); err != nil {
			return err
		}
		_, err := q.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, name)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &pgErr) && pgErr.Code == "42704": // undefined_object
			return nil
		case errors.As(err, &pgErr) && pgErr.Code == "55006": // object_in_use: taken again
			t := time.NewTimer(terminatePoll)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("drop slot %s: %w", name, ctx.Err())
			case <-t.C:
			}
		default:
			return fmt.Errorf("drop slot %s: %w", name, err)
		}
	}
}
