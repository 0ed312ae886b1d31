package election

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// proxy forwards TCP connections to a server and can freeze them: bytes
// stop flowing but both sockets stay open, as in a network partition that
// the kernel on either side cannot see (the proxy's kernel acknowledges).
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	thawed *sync.Cond
	frozen bool
	closed bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.thawed = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = client.Close()
			_ = server.Close()
			return
		}
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(server, client) })
		p.wg.Go(func() { p.pipe(client, server) })
	}
}

// pipe copies src to dst, holding every chunk (and the close) while frozen.
func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
			p.thawed.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			_ = dst.Close()
			_ = src.Close()
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = false
	p.thawed.Broadcast()
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.thaw()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// url is target's URL with the proxy in between.
func (p *proxy) url(t *testing.T, target string) string {
	t.Helper()
	c, err := pgx.ParseConfig(target)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", c.User, p.ln.Addr(), c.Database)
}

// A leader cut off from the server gives up on its own, while the server
// still holds its lock, so nobody else can lead until it has stopped.
func TestPartitionedLeaderGivesUpFirst(t *testing.T) {
	url := env.DB(t)
	pool := testenv.Pool(t, url)
	ctx := context.Background()
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, fmt.Sprintf("%s:%d", cc.Host, cc.Port))
	id := randomLockID()
	a := newElector(t, testConfig(p.url(t, url), id, "relay a"))
	b := newElector(t, testConfig(url, id, "relay b"))
	la := acquire(t, a)
	pid := pidOf(t, la)
	bCh := acquireAsync(t, b)
	waitState(t, b, StateStandby)

	p.freeze()
	waitLost(t, la)
	if !IsConnLost(la.Err()) {
		t.Fatalf("Err = %v, want a lost connection", la.Err())
	}
	h, ok, err := Leader(ctx, pool, id)
	if err != nil || !ok || h.PID != pid {
		t.Fatalf("Leader = %+v, %v, %v; want the partitioned leader's session %d still holding", h, ok, err, pid)
	}
	select {
	case r := <-bCh:
		t.Fatalf("b led while the partitioned leader still could: %+v", r)
	default:
	}

	// The partition heals: the server sees the leader's connection close.
	p.thaw()
	wait(t, bCh)
}
