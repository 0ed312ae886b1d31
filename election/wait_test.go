package election

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// waiter is the backend of the session named identity while it waits for an
// advisory lock, and when its current statement started; pid 0 when none
// waits.
func waiter(t *testing.T, pool *pgxpool.Pool, identity string) (pid int32, since time.Time) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `SELECT a.pid, a.query_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE a.application_name = $1 AND l.locktype = 'advisory' AND NOT l.granted`, identity).Scan(&pid, &since)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return pid, since
}

// waitingAgain waits until identity waits in a statement other than the
// one that started at since, and returns when that one started.
func waitingAgain(t *testing.T, pool *pgxpool.Pool, identity string, since time.Time) time.Time {
	t.Helper()
	var next time.Time
	testenv.Eventually(t, within, func() error {
		pid, start := waiter(t, pool, identity)
		if pid == 0 || !start.After(since) {
			return fmt.Errorf("%s not waiting in a new statement", identity)
		}
		next = start
		return nil
	})
	return next
}

// A standby waits on the lock in bounded waits: each one ends (lock_timeout)
// and the next begins on the same connection, and it stays a standby
// throughout, never unhealthy.
func TestStandbyWaitsOnTheLock(t *testing.T) {
	url := env.DB(t)
	pool := testenv.Pool(t, url)
	id := randomLockID()
	acquire(t, newElector(t, testConfig(url, id, "relay a")))
	b := newElector(t, testConfig(url, id, "relay b"))
	rec := record(b)
	acquireAsync(t, b)

	since := waitingAgain(t, pool, "relay b", time.Time{})
	pid, _ := waiter(t, pool, "relay b")
	for range 3 {
		since = waitingAgain(t, pool, "relay b", since)
	}
	if again, _ := waiter(t, pool, "relay b"); again != pid {
		t.Errorf("relay b waits on backend %d, was %d: it reconnected", again, pid)
	}
	if got, want := rec.transitions(), []string{"unhealthy>standby"}; !slices.Equal(got, want) {
		t.Errorf("b transitions %v, want %v", got, want)
	}
}

// A standby whose connection dies while it waits is unhealthy until it has
// reconnected, then waits again and takes over when the leader goes.
func TestStandbyConnectionLostWhileWaiting(t *testing.T) {
	url := env.DB(t)
	pool := testenv.Pool(t, url)
	id := randomLockID()
	la := acquire(t, newElector(t, testConfig(url, id, "relay a")))
	b := newElector(t, testConfig(url, id, "relay b"))
	rec := record(b)
	bCh := acquireAsync(t, b)

	waitingAgain(t, pool, "relay b", time.Time{})
	pid, _ := waiter(t, pool, "relay b")
	var done bool
	if err := pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1, 10000)`, pid).Scan(&done); err != nil || !done {
		t.Fatalf("terminate %d: %v, %v", pid, done, err)
	}
	testenv.Eventually(t, within, func() error {
		if again, _ := waiter(t, pool, "relay b"); again == 0 || again == pid {
			return errors.New("relay b not waiting on a new connection")
		}
		return nil
	})
	release(t, la)
	wait(t, bCh)
	want := []string{"unhealthy>standby", "standby>unhealthy", "unhealthy>standby", "standby>leader"}
	if got := rec.transitions(); !slices.Equal(got, want) {
		t.Errorf("b transitions %v, want %v", got, want)
	}
}

// Cancelling a waiting standby ends its server-side wait before Acquire
// returns (a cancel request, not just a closed socket), so no abandoned
// backend stays in the lock queue ahead of the other standbys.
func TestCancelledStandbyLeavesTheLockQueue(t *testing.T) {
	url := env.DB(t)
	pool := testenv.Pool(t, url)
	id := randomLockID()
	la := acquire(t, newElector(t, testConfig(url, id, "relay a")))
	// Long waits (Interval, deadlock_timeout and with them the server's
	// client_connection_check_interval): a backend left waiting would still
	// wait when the test looks.
	slow := testConfig(url+"&deadlock_timeout=60s", id, "relay b")
	slow.Interval, slow.KeepAlive = 10*time.Second, 40*time.Second
	b := newElector(t, slow)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errCh := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _, err := b.Acquire(ctx); errCh <- err })
	waitingAgain(t, pool, "relay b", time.Time{})

	cancel()
	if err := <-errCh; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v, want context.Canceled", err)
	}
	if pid, _ := waiter(t, pool, "relay b"); pid != 0 {
		t.Fatalf("backend %d of the cancelled standby still waits for the lock", pid)
	}
	c := newElector(t, testConfig(url, id, "relay c"))
	cCh := acquireAsync(t, c)
	waitingAgain(t, pool, "relay c", time.Time{})
	release(t, la)
	lc := wait(t, cCh)
	if h, ok, err := Leader(context.Background(), pool, id); err != nil || !ok || h.PID != pidOf(t, lc) {
		t.Fatalf("Leader = %+v, %v, %v; want relay c", h, ok, err)
	}
}

// A standby cut off from the server notices while it waits: its wait gets
// no answer, it turns unhealthy, and once the network heals it waits again.
func TestPartitionedStandbyTurnsUnhealthy(t *testing.T) {
	url := env.DB(t)
	pool := testenv.Pool(t, url)
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, fmt.Sprintf("%s:%d", cc.Host, cc.Port))
	id := randomLockID()
	la := acquire(t, newElector(t, testConfig(url, id, "relay a")))
	b := newElector(t, testConfig(p.url(t, url), id, "relay b"))
	bCh := acquireAsync(t, b)
	waitingAgain(t, pool, "relay b", time.Time{})

	p.freeze()
	waitState(t, b, StateUnhealthy)
	p.thaw()
	waitState(t, b, StateStandby)
	release(t, la)
	wait(t, bCh)
}
