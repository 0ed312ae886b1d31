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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// connConfig prepares the lock connection's configuration: application_name
// and a dialer that sets the client's TCP keepalives and TCP_USER_TIMEOUT.
func connConfig(base *pgx.ConnConfig, identity string, t timings) *pgx.ConnConfig {
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
	return cc
}

// connect opens a lock connection and sets the server's side of the
// keepalive bound on its session. SET rather than start-up parameters, so
// that a session-mode pooler that refuses unknown start-up parameters works.
func connect(ctx context.Context, cc *pgx.ConnConfig, t timings) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.connectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	ka := strconv.Itoa(t.serverKeepAliveSecs)
	sql := `SELECT set_config('tcp_keepalives_idle', $1, false),
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
	_, err = conn.Exec(ctx, sql, ka, strconv.Itoa(serverProbes),
		strconv.FormatInt(t.serverUserTimeoutMS, 10), strconv.FormatInt(max(1, t.interval.Milliseconds()), 10))
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("set server keepalives (tcp_user_timeout needs PostgreSQL 12 or later): %w", err)
	}
	return conn, nil
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

// tryLock takes the session-level lock if it is free.
func tryLock(ctx context.Context, conn *pgx.Conn, lockID int64, t timings) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, t.verifyTimeout)
	defer cancel()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockID).Scan(&ok); err != nil {
		return false, fmt.Errorf("try lock %d: %w", lockID, err)
	}
	return ok, nil
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
