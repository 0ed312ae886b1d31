package election

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/internal/rawsock"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

const within = 30 * time.Second

// testConfig is fast: verify every 100ms, verify timeout 500ms. Its lock
// connection is wrapped as the relay's is (relay.Config), so that the loss
// and partition tests run on the socket the relay leads with.
func testConfig(url string, lockID int64, identity string) Config {
	return Config{
		URL:        url,
		LockID:     lockID,
		Interval:   100 * time.Millisecond,
		KeepAlive:  2 * time.Second,
		MaxBackoff: 500 * time.Millisecond,
		Identity:   identity,
		WrapConn:   rawsock.Wrap,
	}
}

func randomLockID() int64 { return rand.Int64N(1<<62) + 1 }

func newElector(t *testing.T, cfg Config) *Elector {
	t.Helper()
	e, err := New(cfg, zerolog.New(zerolog.NewTestWriter(t)).With().Str("identity", cfg.Identity).Logger())
	if err != nil {
		t.Fatalf("new elector: %v", err)
	}
	return e
}

type acquired struct {
	lease *Lease
	err   error
}

// acquireAsync runs Acquire in a goroutine the test owns: its cleanup
// cancels it, waits for it and releases whatever it acquired.
func acquireAsync(t *testing.T, e *Elector) <-chan acquired {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan acquired, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		l, err := e.Acquire(ctx)
		out <- acquired{l, err}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		select {
		case r := <-out:
			if r.lease != nil {
				release(t, r.lease)
			}
		default:
		}
	})
	return out
}

// acquire blocks until e leads.
func acquire(t *testing.T, e *Elector) *Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	l, err := e.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	t.Cleanup(func() { release(t, l) })
	return l
}

func release(t *testing.T, l *Lease) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := l.Release(ctx); err != nil {
		t.Errorf("release: %v", err)
	}
}

func wait(t *testing.T, ch <-chan acquired) *Lease {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("acquire: %v", r.err)
		}
		t.Cleanup(func() { release(t, r.lease) })
		return r.lease
	case <-time.After(within):
		t.Fatalf("not leader within %v", within)
		return nil
	}
}

func pidOf(t *testing.T, l *Lease) int32 {
	t.Helper()
	var pid int32
	err := l.Do(context.Background(), func(_ context.Context, conn *pgx.Conn) error {
		pid = int32(conn.PgConn().PID())
		return nil
	})
	if err != nil {
		t.Fatalf("do: %v", err)
	}
	return pid
}

func waitState(t *testing.T, e *Elector, want State) {
	t.Helper()
	testenv.Eventually(t, within, func() error {
		if got := e.State(); got != want {
			return fmt.Errorf("state %v, want %v", got, want)
		}
		return nil
	})
}

func waitLost(t *testing.T, l *Lease) {
	t.Helper()
	select {
	case <-l.Lost():
	case <-time.After(within):
		t.Fatalf("lease not lost within %v", within)
	}
}

// recorder collects an elector's transitions.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func record(e *Elector) *recorder {
	r := &recorder{}
	e.OnChange(func(from, to State) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got = append(r.got, from.String()+">"+to.String())
	})
	return r
}

func (r *recorder) transitions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func TestOneLeaderAndHandOver(t *testing.T) {
	url := env.DB(t)
	id := randomLockID()
	a := newElector(t, testConfig(url, id, "relay a"))
	b := newElector(t, testConfig(url, id, "relay b"))
	recA, recB := record(a), record(b)

	la := acquire(t, a)
	if got := a.State(); got != StateLeader {
		t.Fatalf("a: state %v, want leader", got)
	}
	bCh := acquireAsync(t, b)

	// b connects and keeps trying; it must not lead while a does. Give it
	// enough tries to have failed a few times, judged by the server's lock
	// table rather than by the clock.
	pool := testenv.Pool(t, url)
	waitState(t, b, StateStandby)
	ctx := context.Background()
	testenv.Eventually(t, within, func() error {
		var tries int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE a.application_name = 'relay b' AND l.locktype = 'advisory' AND NOT l.granted`).Scan(&tries)
		if err != nil || tries == 0 {
			return fmt.Errorf("b has not tried yet (%v)", err)
		}
		return nil
	})
	select {
	case r := <-bCh:
		t.Fatalf("b acquired while a leads: %+v", r)
	default:
	}
	h, ok, err := Leader(ctx, pool, id)
	if err != nil || !ok || h.Identity != "relay a" {
		t.Fatalf("Leader = %+v, %v, %v; want relay a", h, ok, err)
	}

	release(t, la)
	if !errors.Is(la.Err(), ErrReleased) {
		t.Fatalf("a: Err = %v, want ErrReleased", la.Err())
	}
	if got := a.State(); got != StateStandby {
		t.Fatalf("a: state after release %v, want standby", got)
	}
	lb := wait(t, bCh)
	if got := b.State(); got != StateLeader {
		t.Fatalf("b: state %v, want leader", got)
	}
	h, ok, err = Leader(ctx, pool, id)
	if err != nil || !ok || h.Identity != "relay b" || h.PID != pidOf(t, lb) {
		t.Fatalf("Leader = %+v, %v, %v; want relay b", h, ok, err)
	}
	if want := []string{"unhealthy>standby", "standby>leader", "leader>standby"}; !slices.Equal(recA.transitions(), want) {
		t.Fatalf("a transitions %v, want %v", recA.transitions(), want)
	}
	if want := []string{"unhealthy>standby", "standby>leader"}; !slices.Equal(recB.transitions(), want) {
		t.Fatalf("b transitions %v, want %v", recB.transitions(), want)
	}
}

func TestDifferentLockIDsDoNotInterfere(t *testing.T) {
	url := env.DB(t)
	pool := testenv.Pool(t, url)
	ctx := context.Background()
	// Negative and extreme keys exercise the classid/objid split.
	ids := []int64{randomLockID(), -randomLockID(), -1, 1<<32 - 1, 1 << 32}
	pids := map[int32]bool{}
	var leases []*Lease
	for i, id := range ids {
		l := acquire(t, newElector(t, testConfig(url, id, fmt.Sprintf("relay %d", i))))
		leases = append(leases, l)
		pid := pidOf(t, l)
		pids[pid] = true
		h, ok, err := Leader(ctx, pool, id)
		if err != nil || !ok {
			t.Fatalf("Leader(%d) = %v, %v", id, ok, err)
		}
		if h.PID != pid || h.Identity != fmt.Sprintf("relay %d", i) || h.ClientAddr != "127.0.0.1" || h.Since.IsZero() {
			t.Fatalf("Leader(%d) = %+v, want pid %d relay %d from 127.0.0.1", id, h, pid, i)
		}
	}
	if len(pids) != len(ids) {
		t.Fatalf("%d distinct holders for %d lock ids", len(pids), len(ids))
	}
	// Each lease's own verify finds its lock.
	for i, l := range leases {
		sem(t, l, func() {
			if err := l.verify(ctx); err != nil {
				t.Fatalf("verify lease %d: %v", i, err)
			}
		})
	}
	if _, ok, err := Leader(ctx, pool, randomLockID()); ok || err != nil {
		t.Fatalf("Leader of a free lock = %v, %v; want none", ok, err)
	}
}

// sem runs fn holding the lease's connection token, as the verifier does.
func sem(t *testing.T, l *Lease, fn func()) {
	t.Helper()
	l.sem <- struct{}{}
	defer func() { <-l.sem }()
	fn()
}

func TestAcquireBusyAndCancel(t *testing.T) {
	url := env.DB(t)
	id := randomLockID()
	a := newElector(t, testConfig(url, id, "relay a"))
	l := acquire(t, a)
	if _, err := a.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Acquire: %v, want ErrBusy", err)
	}
	b := newElector(t, testConfig(url, id, "relay b"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _, err := b.Acquire(ctx); done <- err })
	waitState(t, b, StateStandby)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v, want context.Canceled", err)
	}
	// Released leases allow a new term on the same elector.
	release(t, l)
	acquire(t, a)
}

func TestAcquireRefusesWhatAPersonMustFix(t *testing.T) {
	cfg := testConfig(env.DB(t), randomLockID(), "relay")
	c, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.URL = fmt.Sprintf("postgres://%s@%s:%d/no_such_database?sslmode=disable", c.User, c.Host, c.Port)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	_, err = newElector(t, cfg).Acquire(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Acquire on a missing database: %v, want an error at once", err)
	}
}
