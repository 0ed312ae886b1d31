package relay_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// blackhole is a TCP proxy in front of PostgreSQL. Once frozen, every
// replication connection through it stops forwarding in both directions
// without closing: a path that drops packets (a firewall or conntrack
// drop) with no reset, which the kernels at both ends cannot notice while
// the proxy's own kernel acknowledges what is sent. Connections made after
// a thaw work; frozen ones stay dead.
type blackhole struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	// afterStartup: each replication connection goes dead as soon as its
	// start-up ends (the server's first ReadyForQuery reaches the client).
	afterStartup atomic.Bool
	done         chan struct{}
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target, done: make(chan struct{})}
	t.Cleanup(func() {
		close(b.done)
		_ = ln.Close()
	})
	go b.serve()
	return b
}

func (b *blackhole) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.handle(c)
	}
}

func (b *blackhole) handle(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", b.target)
	if err != nil {
		return
	}
	defer s.Close()
	// The startup message says whether this is a replication connection.
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	rest := make([]byte, binary.BigEndian.Uint32(hdr[:])-4)
	if _, err := io.ReadFull(c, rest); err != nil {
		return
	}
	repl := strings.Contains(string(rest), "replication\x00database")
	if _, err := s.Write(append(hdr[:], rest...)); err != nil {
		return
	}
	var dead atomic.Bool
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if repl && (b.frozen.Load() || dead.Load()) {
				// Swallow everything from now on; close only when the test ends.
				go func() { _, _ = io.Copy(io.Discard, src) }()
				<-b.done
				return
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(s, c)
	if repl && b.afterStartup.Load() {
		b.startupOnly(c, s, &dead)
		return
	}
	pipe(c, s)
}

// startupOnly passes the server's messages to the client up to and
// including the first ReadyForQuery, marking the connection dead just
// before that one, so that nothing the client sends next gets through;
// then it swallows the server's side until the test ends.
func (b *blackhole) startupOnly(c, s net.Conn, dead *atomic.Bool) {
	for {
		var head [5]byte
		if _, err := io.ReadFull(s, head[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(head[1:])-4)
		if _, err := io.ReadFull(s, body); err != nil {
			return
		}
		last := head[0] == 'Z'
		dead.Store(last)
		if _, err := c.Write(append(head[:], body...)); err != nil || last {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, s) }()
	<-b.done
}

// behindBlackhole is a harness whose pool and replication connection go
// through a blackhole while the lock connection, which flips, goes direct.
func behindBlackhole(t *testing.T, receiveTimeout time.Duration) (*blackhole, *relaytest.Harness) {
	t.Helper()
	direct := env.DB(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	bh := newBlackhole(t, u.Host)
	proxied := *u
	proxied.Host = bh.ln.Addr().String()
	h := relaytest.NewAt(t, env, direct, true)
	h.Cfg.DatabaseURL = proxied.String()
	h.Cfg.Election.URL = direct
	h.Cfg.ReceiveTimeout = receiveTimeout
	return bh, h
}

// waitTermEnded waits until some leadership term of r has ended.
func waitTermEnded(t *testing.T, r *relaytest.Relay, within time.Duration, why string) {
	t.Helper()
	testenv.Eventually(t, within, func() error {
		for _, n := range r.Relay.Snapshot().TermEnds {
			if n > 0 {
				return nil
			}
		}
		return errors.New(why)
	})
}

// The replication connection's path dies silently while the lock
// connection stays healthy: the walsender falls silent, and the term ends
// after the receive timeout (a keepalive request unanswered) instead of
// reading forever while holding the lease. Once the path works again the
// next term delivers what was written meanwhile, once and in order. Found
// by review: before the receive timeout the relay stayed "streaming" for
// good (90 s in the test, with the server's walsender long gone).
func TestSilentReplicationConnectionEndsTheTerm(t *testing.T) {
	bh, h := behindBlackhole(t, 4*time.Second)
	r := h.Start()
	defer r.Stop(t)
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 1, 5, &seq)
	h.WaitAllDelivered(time.Minute)

	bh.frozen.Store(true)
	relaytest.WriteN(t, h, 1, 5, &seq)
	waitTermEnded(t, r, time.Minute, "the term still reads a silent replication connection")
	bh.frozen.Store(false)
	relaytest.WriteN(t, h, 1, 5, &seq)
	h.WaitAllDelivered(time.Minute)
	h.CheckRowsMatchStream(h.CheckStream())
}

// A replication connection whose path dies right after it connected: the
// term's first read on it (its wal_sender_timeout) is bounded like the
// connect, so the term ends and is retried instead of holding the lease
// (found by review: it was the one unbounded call at a term's start).
func TestReplicationConnectionDeadAfterStartupEndsTheTerm(t *testing.T) {
	bh, h := behindBlackhole(t, 2*time.Second)
	bh.afterStartup.Store(true)
	r := h.Start()
	defer r.Stop(t)
	waitTermEnded(t, r, 30*time.Second, "the term still waits on a dead replication connection")
	bh.afterStartup.Store(false)
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 1, 5, &seq)
	h.WaitAllDelivered(time.Minute)
}
