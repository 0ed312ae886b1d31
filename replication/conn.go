package replication

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/internal/rawsock"
)

// applicationName is what pg_stat_replication and pg_stat_activity show
// unless the URL names another.
const applicationName = "cdcrelay"

// ApplicationName is the application_name a replication connection to url
// reports: the URL's own, or "cdcrelay".
func ApplicationName(url string) string {
	if cfg, err := pgconn.ParseConfig(url); err == nil && cfg.RuntimeParams["application_name"] != "" {
		return cfg.RuntimeParams["application_name"]
	}
	return applicationName
}

// Conn is one replication connection (replication=database). It is not safe
// for concurrent use: the relay's reader goroutine owns it, and SendStatus is
// called from that goroutine too.
type Conn struct {
	pg        *pgconn.PgConn
	version   int
	streaming bool
	closed    bool

	// The deadlines last set on the socket, so the hot path only touches the
	// runtime poller when a deadline actually changes.
	readDeadline  time.Time
	writeDeadline time.Time

	// status is the reused buffer of a standby status update.
	status [statusLen]byte
}

// Connect opens a replication connection to url (any libpq URL or DSN that
// names a database). It adds replication=database and, unless the URL sets
// one, application_name=cdcrelay.
func Connect(ctx context.Context, url string) (*Conn, error) {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	return connectConfig(ctx, cfg)
}

func connectConfig(ctx context.Context, cfg *pgconn.Config) (*Conn, error) {
	cfg.RuntimeParams["replication"] = "database"
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = applicationName
	}
	cfg.DialFunc = rawsock.WrapDial(cfg.DialFunc)
	pg, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open replication connection: %w", err)
	}
	v, err := parseServerVersion(pg.ParameterStatus("server_version"))
	if err != nil {
		_ = pg.Close(ctx)
		return nil, fmt.Errorf("open replication connection: %w", err)
	}
	return &Conn{pg: pg, version: v}, nil
}

// Close ends the connection; the walsender exits and releases the slot
// shortly after (asynchronously: a Start on another connection right after
// Close can still see ErrSlotActive for a moment). Closing twice is harmless.
func (c *Conn) Close(ctx context.Context) error {
	if c.closed {
		return nil
	}
	c.closed = true
	c.streaming = false
	// An expired deadline left by Receive or SendStatus would fail the
	// Terminate message and leave the walsender to notice the EOF alone.
	_ = c.pg.Conn().SetDeadline(time.Time{})
	if err := c.pg.Close(ctx); err != nil {
		return fmt.Errorf("close replication connection: %w", err)
	}
	return nil
}

// ServerVersion is the server's version as server_version_num spells it,
// e.g. 150018 for 15.18 (90624 for 9.6.24).
func (c *Conn) ServerVersion() int { return c.version }

// SupportsMessages reports whether pgoutput on this server can send column
// values in binary form and logical decoding messages (StartOptions.Binary
// and Messages): PostgreSQL 14 and later.
func (c *Conn) SupportsMessages() bool { return c.version >= 140000 }

// BackendPID is the walsender's process id, the active_pid that
// pg_replication_slots shows while this Conn streams.
func (c *Conn) BackendPID() uint32 { return c.pg.PID() }

// fail closes the connection when err leaves it unusable and says so in the
// returned error. A server ERROR answered to a command leaves the connection
// usable; anything else (network errors, cancelled contexts mid-command,
// FATAL errors, protocol surprises) does not.
func (c *Conn) fail(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Severity == "ERROR" && !c.pg.IsClosed() {
		return serverError(op, pgErr)
	}
	c.abort()
	return lostError(op, err)
}

// abort drops the connection without the niceties of Close: it is already
// broken or in an unknown protocol state.
func (c *Conn) abort() {
	if c.closed {
		return
	}
	c.closed = true
	c.streaming = false
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.pg.Conn().SetDeadline(time.Now().Add(time.Second))
	_ = c.pg.Close(ctx)
}

// usable refuses commands on a closed or streaming connection.
func (c *Conn) usable(op string) error {
	if c.closed {
		return lostError(op, errors.New("connection is closed"))
	}
	if c.streaming {
		return fmt.Errorf("%s: connection is streaming: a replication connection runs no command after Start", op)
	}
	return nil
}

// exec runs one replication command and returns its single result set.
func (c *Conn) exec(ctx context.Context, op, sql string) (*pgconn.Result, error) {
	if err := c.usable(op); err != nil {
		return nil, err
	}
	results, err := c.pg.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, c.fail(op, err)
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("%s: expected 1 result set, got %d", op, len(results))
	}
	return results[0], nil
}

// parseServerVersion turns a server_version parameter ("15.18 (Debian
// 15.18-1)", "9.6.24", "17beta1", "18devel") into server_version_num form.
func parseServerVersion(s string) (int, error) {
	bad := fmt.Errorf("unrecognised server_version %q", s)
	nums := make([]int, 0, 3)
	rest := s
	for len(nums) < 3 {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			break
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil {
			return 0, bad
		}
		nums = append(nums, n)
		rest = rest[i:]
		if !strings.HasPrefix(rest, ".") {
			break
		}
		rest = rest[1:]
	}
	switch {
	case len(nums) == 0:
		return 0, bad
	case nums[0] >= 10: // 10 and later: major.minor
		minor := 0
		if len(nums) > 1 {
			minor = nums[1]
		}
		return nums[0]*10000 + minor, nil
	case len(nums) >= 2: // before 10: major.major.minor
		patch := 0
		if len(nums) > 2 {
			patch = nums[2]
		}
		return nums[0]*10000 + nums[1]*100 + patch, nil
	default:
		return 0, bad
	}
}
