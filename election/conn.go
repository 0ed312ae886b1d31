package election

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// connConfig prepares the lock connection's configuration: application_name
// and a dialer that sets the client's TCP keepalives and TCP_USER_TIMEOUT.
func connConfig(base *pgx.ConnConfig, identity string, t timings, wrap func(net.Conn) net.Conn) *pgx.ConnConfig {
	cc := base.Copy()
	cc.RuntimeParams["application_name"] = identity
	cc.ConnectTimeout = t.connectTimeout
	d := &net.Dialer{
		Timeout: t.connectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     t.clientKeepAlive,
			Interval: t.clientKeepAlive,
			Count:    clientProbes,
		},
		Control: func(network, _ string, c syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil
			}
			return setUserTimeout(c, t.clientUserTimeout)
		},
	}
	cc.DialFunc = d.DialContext
	if wrap != nil {
		cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return wrap(c), nil
		}
	}
	return cc
}

// connect opens a lock connection and sets the server's side of the
// keepalive bound on its session. SET rather than start-up parameters, so
// that a session-mode pooler that refuses unknown start-up parameters works.
// It also returns how long a standby may wait on the lock per statement
// (see waitLock).
func connect(ctx context.Context, cc *pgx.ConnConfig, t timings) (*pgx.Conn, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, t.connectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, 0, fmt.Errorf("connect: %w", err)
	}
	ka := strconv.Itoa(t.serverKeepAliveSecs)
	sql := `SELECT (SELECT setting::bigint FROM pg_settings WHERE name = 'deadlock_timeout'),
		set_config('tcp_keepalives_idle', $1, false),
		set_config('tcp_keepalives_interval', $1, false),
		set_config('tcp_keepalives_count', $2, false),
		set_config('tcp_user_timeout', $3, false)`
	if serverMajor(conn) >= 14 {
		// A backend busy in a long statement (inside Lease.Do) does not
		// read its socket; this makes it notice a vanished client, and
		// free the lock, within an Interval rather than when it next writes.
		sql += `, set_config('client_connection_check_interval', $4, false)`
	} else {
		sql += `, $4::text`
	}
	var deadlockMS int64
	err = conn.QueryRow(ctx, sql, ka, strconv.Itoa(serverProbes),
		strconv.FormatInt(t.serverUserTimeoutMS, 10), strconv.FormatInt(max(1, t.interval.Milliseconds()), 10)).
		Scan(&deadlockMS, nil, nil, nil, nil, nil)
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, 0, fmt.Errorf("set server keepalives (tcp_user_timeout needs PostgreSQL 12 or later): %w", err)
	}
	return conn, lockWait(t.interval, time.Duration(deadlockMS)*time.Millisecond), nil
}

// lockWait is how long one waitLock may wait: an Interval, but less than
// the server's deadlock_timeout. A lock wait that outlasts deadlock_timeout
// runs the deadlock detector, which briefly takes every lock-manager
// partition, and with log_lock_waits (on by default from PostgreSQL 18) logs
// a line: every standby would do both once a wait.
func lockWait(interval, deadlockTimeout time.Duration) time.Duration {
	if deadlockTimeout <= 0 {
		return interval
	}
	return max(10*time.Millisecond, min(interval, deadlockTimeout-deadlockTimeout/4))
}

// SQLSTATEs of a lock wait that ended before the lock was granted.
const (
	lockNotAvailable = "55P03" // lock_timeout
	queryCanceled    = "57014" // statement_timeout, or a cancel request
)

// waitLock takes the session-level lock, waiting for it up to wait. The
// moment the holder's session ends, the server grants it to the first
// waiter: a standby takes over without polling. ok is false when wait
// passed first (lock_timeout, or a statement_timeout shorter than it): the
// connection answered, so it is alive. The wait is bounded so that a
// standby keeps proving its connection (StateStandby) and notices a dead
// one; the client gives up wait plus verifyTimeout after sending, whatever
// the socket does.
//
// When ctx ends first, pgx closes the connection and sends the server a
// cancel request, which ends the wait there at once (a closed socket alone
// is noticed only within client_connection_check_interval or wait): no
// abandoned backend stays in the lock queue ahead of the other standbys.
// closeConn waits for that.
func waitLock(ctx context.Context, conn *pgx.Conn, lockID int64, wait time.Duration, t timings) (ok bool, err error) {
	qctx, cancel := context.WithTimeout(ctx, wait+t.verifyTimeout)
	defer cancel()
	// lock_timeout is set for this statement's transaction only.
	_, err = conn.Exec(qctx, `SELECT set_config('lock_timeout', $2, true), pg_advisory_lock($1)`,
		lockID, strconv.FormatInt(wait.Milliseconds(), 10))
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.As(err, &pgErr) && (pgErr.Code == lockNotAvailable || pgErr.Code == queryCanceled):
		return false, nil
	}
	return false, fmt.Errorf("wait for lock %d: %w", lockID, err)
}

// serverMajor is the server's major version, 0 if unknown.
func serverMajor(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		v = v[:end]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// lockKey splits a bigint advisory key the way the server stores it in
// pg_locks: classid is the high half, objid the low half, objsubid 1 (the
// two-int4 form uses objsubid 2).
func lockKey(lockID int64) (classid, objid int64) {
	return int64(uint64(lockID) >> 32), int64(uint32(lockID))
}

// holdsLockSQL is true when this session holds the lock. It doubles as the
// leader's liveness probe: a round trip on the lock connection.
const holdsLockSQL = `SELECT EXISTS (SELECT FROM pg_locks
	WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
	  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)`

// ErrNotHeld is the cause of a lost lease whose connection is alive but no
// longer holds the lock (something ran pg_advisory_unlock on it).
var ErrNotHeld = errors.New("advisory lock no longer held by the lock connection")

func verifyLock(ctx context.Context, conn *pgx.Conn, lockID int64, t timings) error {
	ctx, cancel := context.WithTimeout(ctx, t.verifyTimeout)
	defer cancel()
	classid, objid := lockKey(lockID)
	var held bool
	if err := conn.QueryRow(ctx, holdsLockSQL, classid, objid).Scan(&held); err != nil {
		return fmt.Errorf("verify lock %d: %w", lockID, err)
	}
	if !held {
		return fmt.Errorf("verify lock %d: %w", lockID, ErrNotHeld)
	}
	return nil
}

// IsConnLost reports whether err means the connection it came from is gone
// (or was closed by the driver), so that any session state on it, such as an
// advisory lock, is gone too. It looks at error types and SQLSTATEs only.
func IsConnLost(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is connection exception; class 57 is operator
		// intervention (admin/crash shutdown, database dropped, idle
		// session timeout), except 57014, a cancelled statement, after
		// which the session lives on.
		return strings.HasPrefix(pgErr.Code, "08") ||
			(strings.HasPrefix(pgErr.Code, "57") && pgErr.Code != "57014") ||
			strings.EqualFold(pgErr.Severity, "FATAL") || strings.EqualFold(pgErr.Severity, "PANIC")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		pgconn.Timeout(err)
}

// retryable tells failures worth reconnecting for (the server is down,
// restarting, overloaded or unreachable) from those a person must fix (bad
// password, missing database, server too old): Acquire returns the latter.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return true
	}
	if len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "08", "53", "57", "58":
		return true
	}
	return false
}
