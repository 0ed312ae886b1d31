package election

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier runs a query returning one row: *pgx.Conn, *pgxpool.Pool and
// pgx.Tx all are.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Holder is the session that holds a lock.
type Holder struct {
	// PID is the holder's server backend process id.
	PID int32
	// Identity is its application_name: Config.Identity of the leader.
	Identity string
	// Host and ProcessID are the leader's host name and process id, read
	// from a default Identity; empty and 0 when Identity was set.
	Host      string
	ProcessID int
	// Since is when the holder's lock connection was opened
	// (pg_stat_activity.backend_start). A standby keeps its connection while
	// it waits, so the lock itself was taken at or after Since; the leader
	// knows the exact time (Lease.Acquired). Zero when the querying role may
	// not see the holder's session details (grant pg_read_all_stats).
	Since time.Time
	// ClientAddr is the holder's address as the server sees it; empty over
	// a Unix socket or without the privilege above.
	ClientAddr string
}

const leaderSQL = `SELECT a.pid, coalesce(a.application_name, ''), a.backend_start, coalesce(host(a.client_addr), '')
	FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.locktype = 'advisory' AND l.granted
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1
	LIMIT 1`

// Leader finds the session holding lockID (a pg_try_advisory_lock(bigint)
// key) in q's database; false when nobody holds it.
func Leader(ctx context.Context, q Querier, lockID int64) (Holder, bool, error) {
	classid, objid := lockKey(lockID)
	var h Holder
	var since *time.Time
	err := q.QueryRow(ctx, leaderSQL, classid, objid).Scan(&h.PID, &h.Identity, &since, &h.ClientAddr)
	if errors.Is(err, pgx.ErrNoRows) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, fmt.Errorf("find holder of lock %d: %w", lockID, err)
	}
	if since != nil {
		h.Since = *since
	}
	h.Host, h.ProcessID = parseIdentity(h.Identity)
	return h, true, nil
}
