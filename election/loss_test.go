package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// terminate ends the lock holder's backend and waits until it has exited
// (PostgreSQL 14+ waits with a timeout argument).
func terminate(t *testing.T, pool *pgxpool.Pool, lockID int64) int32 {
	t.Helper()
	ctx := context.Background()
	h, ok, err := Leader(ctx, pool, lockID)
	if err != nil || !ok {
		t.Fatalf("Leader = %v, %v", ok, err)
	}
	var done bool
	if err := pool.QueryRow(ctx, `SELECT pg_terminate_backend($1, 10000)`, h.PID).Scan(&done); err != nil || !done {
		t.Fatalf("terminate %d: %v, %v", h.PID, done, err)
	}
	return h.PID
}

func TestLostWhenBackendTerminated(t *testing.T) {
	url := env.DB(t)
	pool := testenv.Pool(t, url)
	id := randomLockID()
	a := newElector(t, testConfig(url, id, "relay a"))
	b := newElector(t, testConfig(url, id, "relay b"))
	la := acquire(t, a)
	bCh := acquireAsync(t, b)
	waitState(t, b, StateStandby)

	terminate(t, pool, id)
	waitLost(t, la)
	if err := la.Err(); err == nil || !IsConnLost(err) {
		t.Fatalf("Err = %v, want a lost connection", err)
	}
	called := false
	err := la.Do(context.Background(), func(context.Context, *pgx.Conn) error { called = true; return nil })
	if !errors.Is(err, ErrLost) || called {
		t.Fatalf("Do after loss: %v (fn called: %v), want ErrLost without calling fn", err, called)
	}
	waitState(t, a, StateUnhealthy)
	lb := wait(t, bCh)
	h, ok, err := Leader(context.Background(), pool, id)
	if err != nil || !ok || h.Identity != "relay b" || h.PID != pidOf(t, lb) {
		t.Fatalf("Leader = %+v, %v, %v; want relay b", h, ok, err)
	}
}

func TestDeposedLeaderCannotWrite(t *testing.T) {
	url := env.DB(t)
	pool := testenv.Pool(t, url)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE flips (who text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	insert := func(who string) func(context.Context, *pgx.Conn) error {
		return func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, `INSERT INTO flips VALUES ($1)`, who)
			return err
		}
	}
	id := randomLockID()
	a := newElector(t, testConfig(url, id, "relay a"))
	b := newElector(t, testConfig(url, id, "relay b"))
	la := acquire(t, a)
	if err := la.Do(ctx, insert("a")); err != nil {
		t.Fatalf("a leads: %v", err)
	}
	bCh := acquireAsync(t, b)
	terminate(t, pool, id)
	lb := wait(t, bCh)

	// a may or may not have noticed yet; either way its write must fail.
	if err := la.Do(ctx, insert("a deposed")); !errors.Is(err, ErrLost) {
		t.Fatalf("deposed Do: %v, want ErrLost", err)
	}
	if err := lb.Do(ctx, insert("b")); err != nil {
		t.Fatalf("b leads: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM flips WHERE who = 'a deposed'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("deposed leader wrote %d rows (%v)", n, err)
	}
	waitLost(t, la)
}

func TestDoIsSerialised(t *testing.T) {
	url := env.DB(t)
	l := acquire(t, newElector(t, testConfig(url, randomLockID(), "relay")))
	var inside, overlaps atomic.Int32
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				errs <- l.Do(context.Background(), func(ctx context.Context, conn *pgx.Conn) error {
					if inside.Add(1) > 1 {
						overlaps.Add(1)
					}
					defer inside.Add(-1)
					_, err := conn.Exec(ctx, `SELECT pg_sleep(0.002)`)
					return err
				})
			}
		})
	}
	go func() { wg.Wait(); close(errs) }()
	for err := range errs {
		if err != nil {
			t.Errorf("Do: %v", err)
		}
	}
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d calls of fn overlapped", n)
	}
	select {
	case <-l.Lost():
		t.Fatalf("lease lost: %v", l.Err())
	default:
	}
}

func TestDoRollsBackATransactionLeftOpen(t *testing.T) {
	l := acquire(t, newElector(t, testConfig(env.DB(t), randomLockID(), "relay")))
	ctx := context.Background()
	err := l.Do(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `BEGIN`)
		return err
	})
	if err == nil || errors.Is(err, ErrLost) {
		t.Fatalf("Do leaving a transaction open: %v, want an error, lease kept", err)
	}
	err = l.Do(ctx, func(_ context.Context, conn *pgx.Conn) error {
		if s := conn.PgConn().TxStatus(); s != 'I' {
			return fmt.Errorf("transaction status %q, want idle", s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLostWhenLockNoLongerHeld(t *testing.T) {
	e := newElector(t, testConfig(env.DB(t), randomLockID(), "relay"))
	l := acquire(t, e)
	// Whoever sees Lost closed must find the elector out of leadership
	// already: the state moves first (it once moved just after, and a
	// check right after waitLost failed under load).
	var lostBeforeState atomic.Bool
	left := make(chan struct{})
	e.OnChange(func(from, to State) {
		if from == StateLeader {
			select {
			case <-l.Lost():
				lostBeforeState.Store(true)
			default:
			}
			close(left)
		}
	})
	err := l.Do(context.Background(), func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitLost(t, l)
	if !errors.Is(l.Err(), ErrNotHeld) {
		t.Fatalf("Err = %v, want ErrNotHeld", l.Err())
	}
	if got := e.State(); got != StateStandby {
		t.Fatalf("state %v, want standby", got)
	}
	select {
	case <-left:
	case <-time.After(within):
		t.Fatalf("no transition out of StateLeader within %v", within)
	}
	if lostBeforeState.Load() {
		t.Fatal("Lost was closed before the elector left StateLeader")
	}
}

func TestReleaseBreaksAStuckDo(t *testing.T) {
	url := env.DB(t)
	id := randomLockID()
	a := newElector(t, testConfig(url, id, "relay a"))
	la := acquire(t, a)
	started := make(chan struct{})
	doErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		doErr <- la.Do(context.Background(), func(ctx context.Context, conn *pgx.Conn) error {
			close(started)
			_, err := conn.Exec(ctx, `SELECT pg_sleep(600)`)
			return err
		})
	})
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := la.Release(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Release: %v, want its deadline", err)
	}
	if err := <-doErr; !errors.Is(err, ErrLost) {
		t.Fatalf("stuck Do: %v, want ErrLost", err)
	}
	if !errors.Is(la.Err(), ErrReleased) {
		t.Fatalf("Err = %v, want ErrReleased", la.Err())
	}
	// The server notices the vanished client inside pg_sleep
	// (client_connection_check_interval) and frees the lock.
	acquire(t, newElector(t, testConfig(url, id, "relay b")))
}

func TestPostgresRestart(t *testing.T) {
	c := env.Cluster(t)
	url := env.DB(t)
	e := newElector(t, testConfig(url, randomLockID(), "relay"))
	l := acquire(t, e)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.StopServer(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	running := false
	defer func() {
		if !running {
			if err := c.StartServer(ctx); err != nil {
				t.Errorf("start server: %v", err)
			}
		}
	}()
	waitLost(t, l)
	if !IsConnLost(l.Err()) {
		t.Fatalf("Err = %v, want a lost connection", l.Err())
	}
	release(t, l)

	ch := acquireAsync(t, e)
	waitState(t, e, StateUnhealthy)
	if err := c.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	running = true
	wait(t, ch)
	if got := e.State(); got != StateLeader {
		t.Fatalf("state %v, want leader", got)
	}
}
