package election

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults for Config fields left zero.
const (
	// DefaultLockID is the advisory lock key when Config.LockID is zero. It is
	// the bytes of "cdcrelay" read as a big-endian int64
	// (0x6364_6372_656c_6179), a value no hand-picked key is likely to hit.
	//
	// Cutting over from a poller that elects its leader with
	// pg_try_advisory_lock(bigint): set --lock-id to the poller's key. Then
	// the old poller and the relay contend for the same lock, in the same
	// database, and can never run at the same time during a rolling
	// cut-over. The two-key form pg_try_advisory_lock(int, int) is a
	// different key space and never conflicts with a bigint key; a poller
	// using it cannot share the lock this way. Zero cannot be chosen as a key:
	// it means "use the default".
	DefaultLockID int64 = 0x6364_6372_656c_6179

	// DefaultInterval bounds each wait of a standby on the lock (it takes
	// over the moment the lock is free either way) and is how often a
	// leader verifies that it still holds it.
	DefaultInterval = time.Second

	// DefaultKeepAlive bounds how long the server keeps the lock of a leader
	// it can no longer reach (see Config.KeepAlive).
	DefaultKeepAlive = 10 * time.Second

	// DefaultMaxBackoff caps the wait between failed connection attempts.
	DefaultMaxBackoff = 10 * time.Second
)

// maxIdentity is NAMEDATALEN-1: the server silently truncates a longer
// application_name, and the truncated one would not match Identity.
const maxIdentity = 63

// Config configures an Elector. The zero value of every field but URL
// means its default.
type Config struct {
	// URL is the PostgreSQL URL of the dedicated lock connection. It must
	// reach the server directly (or through a pooler in session mode): a
	// session-level lock is held by the server backend, not by the client.
	URL string

	// LockID is the pg_try_advisory_lock(bigint) key; 0 means DefaultLockID.
	// Advisory locks are per database: every replica (and an old poller)
	// must connect to the same database.
	LockID int64

	// Interval bounds each wait of a standby on the lock (also kept below
	// the server's deadlock_timeout), after which it proves its connection
	// alive and waits again, and is how often the leader verifies it still
	// holds the lock; 0 means DefaultInterval. A waiting standby takes over
	// the moment the lock is free: a killed leader process frees it at once.
	Interval time.Duration

	// KeepAlive bounds how long the server keeps the lock of a leader it can
	// no longer reach (network partition, frozen host): the server-side
	// tcp_user_timeout is KeepAlive, and tcp_keepalives_idle/interval/count
	// add up to it. The leader gives up sooner, so that it has stopped before
	// anybody else can lead: its verify query times out after KeepAlive/4
	// and its own socket after KeepAlive/2. 0 means the larger of
	// DefaultKeepAlive and 4*Interval; it must be at least 2s and at least
	// 4*Interval (otherwise the server could free the lock before the
	// leader notices).
	KeepAlive time.Duration

	// MaxBackoff caps the capped exponential back-off (with jitter) between
	// failed connection attempts; 0 means DefaultMaxBackoff.
	MaxBackoff time.Duration

	// Identity is the application_name of the lock connection, shown by
	// Leader and in pg_stat_activity so operators can see who leads. Printable
	// ASCII, at most 63 bytes; empty means "cdcrelay <hostname> pid <pid>".
	Identity string

	// WrapConn, if set, wraps each lock connection (and each connection
	// that sends it a cancel request) once dialed, its keepalives and
	// TCP_USER_TIMEOUT already set. The result must honour deadlines and
	// a Close concurrent with a blocked Read or Write as the wrapped conn
	// does: the leader's loss detection relies on both. The relay makes the
	// connection's reads and writes raw system calls with it (rawsock.Wrap),
	// since every leader-only write, the flips included, runs there.
	WrapConn func(net.Conn) net.Conn
}

// timings are the durations derived from Config once, in New.
type timings struct {
	interval   time.Duration
	maxBackoff time.Duration
	// verifyTimeout bounds each verify and try-lock query.
	verifyTimeout time.Duration
	// connectTimeout bounds a connection attempt (dial, TLS, start-up).
	connectTimeout time.Duration

	// Client side: the socket of the lock connection.
	clientUserTimeout time.Duration
	clientKeepAlive   time.Duration // idle and interval, count clientProbes

	// Server side, as the server's settings take them (seconds and ms).
	serverKeepAliveSecs int // tcp_keepalives_idle and tcp_keepalives_interval
	serverUserTimeoutMS int64
}

const (
	clientProbes = 3
	serverProbes = 4
)

func (c *Config) setDefaults() {
	if c.LockID == 0 {
		c.LockID = DefaultLockID
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = max(DefaultKeepAlive, 4*c.Interval)
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Identity == "" {
		c.Identity = defaultIdentity()
	}
}

func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = '?'
		}
	}
	return string(b)
}

func (c *Config) validate() (*pgx.ConnConfig, error) {
	switch {
	case c.URL == "":
		return nil, errors.New("no database URL for the lock connection")
	case c.Interval < 0:
		return nil, fmt.Errorf("interval %v must be positive", c.Interval)
	case c.MaxBackoff < 0:
		return nil, fmt.Errorf("max back-off %v must be positive", c.MaxBackoff)
	case c.KeepAlive < 2*time.Second:
		return nil, fmt.Errorf("keepalive %v must be at least 2s", c.KeepAlive)
	case c.KeepAlive < 4*c.Interval:
		return nil, fmt.Errorf("keepalive %v must be at least 4 × interval (%v): a partitioned leader must notice before the server frees its lock", c.KeepAlive, c.Interval)
	case len(c.Identity) > maxIdentity:
		return nil, fmt.Errorf("identity %q is longer than %d bytes, the server would truncate it", c.Identity, maxIdentity)
	case printable(c.Identity) != c.Identity:
		return nil, fmt.Errorf("identity %q must be printable ASCII, the server would alter it", c.Identity)
	}
	cc, err := pgx.ParseConfig(c.URL)
	if err != nil {
		return nil, fmt.Errorf("lock connection URL: %w", err)
	}
	return cc, nil
}

func (c *Config) timings(connectTimeout time.Duration) timings {
	k := c.KeepAlive
	if connectTimeout == 0 {
		connectTimeout = k / 2
	}
	return timings{
		interval:            c.Interval,
		maxBackoff:          c.MaxBackoff,
		verifyTimeout:       k / 4,
		connectTimeout:      connectTimeout,
		clientUserTimeout:   k / 2,
		clientKeepAlive:     max(time.Second, (k/2)/(clientProbes+1)).Round(time.Second),
		serverKeepAliveSecs: ceilSeconds(k / (serverProbes + 1)),
		serverUserTimeoutMS: k.Milliseconds(),
	}
}

// ceilSeconds rounds up so the server never gives up before KeepAlive.
func ceilSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
