package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

var identityPID = regexp.MustCompile(`pid (\d+)`)

// lockHolders returns the OS pids of the relay processes holding the
// leadership lock, from the application_name of their lock connections.
func lockHolders(t *testing.T, h *relaytest.Harness) []int {
	t.Helper()
	id := h.Cfg.Election.LockID
	rows, err := h.Pool.Query(context.Background(), `
SELECT a.application_name, l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1`,
		uint32(uint64(id)>>32), uint32(uint64(id)))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for rows.Next() {
		var app string
		var backend int
		if err := rows.Scan(&app, &backend); err != nil {
			t.Fatal(err)
		}
		m := identityPID.FindStringSubmatch(app)
		if m == nil {
			t.Fatalf("lock holder %d has application_name %q: no pid in it", backend, app)
		}
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return pids
}

// walsenders is how many walsenders stream this test's slot.
func walsenders(t *testing.T, h *relaytest.Harness) int {
	t.Helper()
	var n int
	if err := h.Pool.QueryRow(context.Background(), `
SELECT count(*) FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
WHERE s.slot_name = 'cdcrelay' AND s.database = current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// leader waits until exactly one process holds the lock and streams, and returns it.
func leader(t *testing.T, h *relaytest.Harness, procs []*proc) *proc {
	t.Helper()
	var found *proc
	testenv.Eventually(t, time.Minute, func() error {
		holders := lockHolders(t, h)
		if len(holders) != 1 {
			return fmt.Errorf("%d lock holders", len(holders))
		}
		if !slotActive(h) {
			return errors.New("slot not streamed")
		}
		for _, p := range procs {
			if !p.exited() && p.pid() == holders[0] {
				found = p
				return nil
			}
		}
		return fmt.Errorf("lock held by pid %d, not one of ours", holders[0])
	})
	return found
}

func startReplicas(t *testing.T, h *relaytest.Harness, n int) []*proc {
	procs := make([]*proc, n)
	for i := range procs {
		procs[i] = startProc(t, fmt.Sprintf("replica-%d", i+1), h.RunArgs())
	}
	return procs
}

func TestThreeReplicasExactlyOneStreams(t *testing.T) {
	h := relaytest.New(t, env, true)
	procs := startReplicas(t, h, 3)
	leader(t, h, procs)
	w := startWriters(t, h, 8000)
	for i := 0; i < 20; i++ {
		if n := len(lockHolders(t, h)); n > 1 {
			t.Fatalf("%d processes hold the leadership lock", n)
		}
		if n := walsenders(t, h); n > 1 {
			t.Fatalf("%d walsenders stream the slot", n)
		}
		time.Sleep(100 * time.Millisecond) // sampling interval, not synchronisation
	}
	w.wait(t)
	h.WaitAllDelivered(2 * time.Minute)
	h.CheckStream()
}

// logFailover prints a measured failover for the closing note.
func logFailover(t *testing.T, what string, d time.Duration) {
	t.Logf("FAILOVER %s: streaming again after %v", what, d.Round(time.Millisecond))
}

func TestLeaderKilledStandbyTakesOverFast(t *testing.T) {
	h := relaytest.New(t, env, true)
	procs := startReplicas(t, h, 3)
	var times []time.Duration
	w := startWriters(t, h, 20000)
	for round := 0; round < 2; round++ {
		old := leader(t, h, procs)
		oldWalsender := h.WalsenderPID()
		killed := time.Now()
		old.kill()
		var took time.Duration
		// The target is a few seconds (measured ~0.1-0.3 s here, and by make
		// bench); the deadline only has to catch a failover that does not
		// happen, also on a loaded CI machine.
		testenv.Eventually(t, 30*time.Second, func() error {
			holders := lockHolders(t, h)
			pid := h.WalsenderPID()
			if len(holders) != 1 || pid == 0 || pid == oldWalsender {
				return fmt.Errorf("lock holders %v, walsender %d (old %d)", holders, pid, oldWalsender)
			}
			took = time.Since(killed)
			return nil
		})
		times = append(times, took)
		logFailover(t, "SIGKILL", took)
		procs = append(procs, startProc(t, fmt.Sprintf("replica-r%d", round), h.RunArgs()))
	}
	w.wait(t)
	h.WaitAllDelivered(2 * time.Minute)
	if msgs := h.CheckStream(); len(msgs) != 20000 {
		t.Fatalf("stream has %d events, want 20000", len(msgs))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	t.Logf("failover after SIGKILL: %v", times)
	if worst := times[len(times)-1]; worst > 5*time.Second {
		t.Logf("WARNING: a failover took %v, over the 5 s target (a loaded machine?)", worst)
	}
}

func TestLeaderLockBackendTerminatedStepsDown(t *testing.T) {
	h := relaytest.New(t, env, true)
	procs := startReplicas(t, h, 2)
	old := leader(t, h, procs)
	w := startWriters(t, h, 10000)
	testenv.Eventually(t, time.Minute, func() error {
		if n := len(h.CommittedIDs()); n < 2000 {
			return fmt.Errorf("%d written", n)
		}
		return nil
	})
	// Terminate the leader's lock connection, not its process.
	var n int
	if err := h.Pool.QueryRow(context.Background(), `
SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1`,
		uint32(uint64(h.Cfg.Election.LockID)>>32), uint32(uint64(h.Cfg.Election.LockID))).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminate lock backend: %d, %v", n, err)
	}
	start := time.Now()
	next := leader(t, h, procs)
	logFailover(t, fmt.Sprintf("lock backend terminated (old leader pid %d, new %d)", old.pid(), next.pid()), time.Since(start))
	if old.exited() {
		t.Fatalf("the deposed leader exited; it should step down and stand by")
	}
	w.wait(t)
	h.WaitAllDelivered(2 * time.Minute)
	if msgs := h.CheckStream(); len(msgs) != 10000 {
		t.Fatalf("stream has %d events, want 10000", len(msgs))
	}
}

// retryingWriter writes until it committed n events, riding out a database
// restart: a failed transaction is retried with a new sequence number, so
// per-writer order holds even when a commit's outcome was unknown.
func retryingWriter(h *relaytest.Harness, n int) func(ctx context.Context, w int, seq *int) error {
	return func(ctx context.Context, w int, seq *int) error {
		for done := 0; done < n; {
			if ctx.Err() != nil {
				return nil
			}
			*seq++
			_, err := h.Pool.Exec(ctx, `SELECT bus.publish($1, $2::bytea)`, fmt.Sprintf("w.%d", w), relaytest.Payload(w, *seq))
			if err != nil {
				time.Sleep(50 * time.Millisecond) // back-off while the server restarts
				continue
			}
			done++
		}
		return nil
	}
}

func TestPostgresRestartMidRun(t *testing.T) {
	c := env.Cluster(t)
	h := relaytest.New(t, env, true)
	procs := startReplicas(t, h, 2)
	leader(t, h, procs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- relaytest.RunWriters(ctx, 4, retryingWriter(h, 3000)) }()
	testenv.Eventually(t, time.Minute, func() error {
		if n := len(h.CommittedIDs()); n < 3000 {
			return fmt.Errorf("%d written", n)
		}
		return nil
	})
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer rcancel()
	if err := c.Restart(rctx, "fast"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	leader(t, h, procs)
	logFailover(t, "postgres restart", time.Since(start))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.WaitAllDelivered(2 * time.Minute)
	if msgs := h.CheckStream(); len(msgs) != 12000 {
		t.Fatalf("stream has %d events, want 12000", len(msgs))
	}
}

func TestRollingRestartUnderLoad(t *testing.T) {
	h := relaytest.New(t, env, true)
	procs := startReplicas(t, h, 3)
	leader(t, h, procs)
	w := startWriters(t, h, 20000)
	for i := range procs {
		procs[i].terminate(t, 30*time.Second)
		procs[i] = startProc(t, fmt.Sprintf("replica-%d-b", i+1), h.RunArgs())
		leader(t, h, procs)
	}
	w.wait(t)
	h.WaitAllDelivered(2 * time.Minute)
	if msgs := h.CheckStream(); len(msgs) != 20000 {
		t.Fatalf("stream has %d events, want 20000", len(msgs))
	}
}
