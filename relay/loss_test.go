package relay_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/internal/pgcluster"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox"
)

// A slot recreated after it went missing is trusted only once its own
// backfill completed. An interrupted backfill must run again on the next
// term, whatever an earlier incarnation of the slot had recorded.
func TestInterruptedBackfillOfRecreatedSlotIsRedone(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 1, 10, &seq)
	h.WaitAllDelivered(time.Minute)
	r.Stop(t)
	dropSlot(t, h.Pool)
	relaytest.WriteN(t, h, 1, 2000, &seq)

	// One event in flight at a time makes the backfill slow enough to stop.
	h.Cfg.Publish.MaxInFlight = 1
	r = h.Start()
	testenv.Eventually(t, time.Minute, func() error {
		if n := flipped(t, h.Pool); n < 30 {
			return fmt.Errorf("%d rows flipped, waiting for the backfill to get going", n)
		}
		return nil
	})
	r.Stop(t)
	if n := flipped(t, h.Pool); n >= 2010 {
		t.Fatalf("the backfill finished (%d rows flipped) before it could be interrupted", n)
	}

	h.Cfg.Publish.MaxInFlight = 0
	r = h.Start()
	h.WaitStreaming(r)
	h.WaitAllDelivered(30 * time.Second)
	if msgs := h.CheckStream(); len(msgs) != 2010 {
		t.Fatalf("stream has %d events, want 2010", len(msgs))
	}
}

// The slot's position is saved to disk as soon as a confirm passes a
// restart-point candidate, without flushing WAL. A dead letter recorded by an
// asynchronous commit must therefore be flushed before the relay confirms
// past its event: otherwise a crash loses the dead letter while the slot has
// moved past the event, and the event is nowhere.
func TestCrashBeforeDeadLetterIsFlushedLosesNothing(t *testing.T) {
	c := ownCluster(t, map[string]string{"bgwriter_lru_maxpages": "0"})
	h := relaytest.NewAt(t, env, c.URL("postgres"), true)
	h.Cfg.HeartbeatInterval = -1
	r := h.Start()
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 1, 10, &seq)
	h.WaitAllDelivered(time.Minute)
	ctx := context.Background()

	// With the WAL writer stopped, only a synchronous commit writes WAL out:
	// the relay's asynchronous flips and dead letters stay in WAL buffers.
	stopWALWriter(t, h.Pool)
	// Two running-xacts records give the slot a restart-point candidate, so
	// the next confirm past them saves the slot to disk at once.
	for range 2 {
		if _, err := h.Pool.Exec(ctx, `CHECKPOINT`); err != nil {
			t.Fatal(err)
		}
	}
	bad, err := outbox.Publish(ctx, h.Pool, "nostream.crash", []byte("must not vanish"))
	if err != nil {
		t.Fatal(err)
	}
	flushed := walLSN(t, h.Pool, "pg_current_wal_flush_lsn()")
	testenv.Eventually(t, time.Minute, func() error {
		return deadLetterExists(ctx, h.Pool, bad.String())
	})
	// Let the relay confirm whatever it would: wait for two status updates.
	waitReply(t, h.Pool, time.Now().Add(2*h.Cfg.StatusInterval))
	confirmed, _ := h.Slot()
	t.Logf("WAL flushed to %s before the dead letter; slot confirmed %s", flushed, confirmed)

	crashCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.StopServer(crashCtx, "immediate"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartServer(crashCtx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, func() error {
		return deadLetterExists(ctx, h.Pool, bad.String())
	})
	h.WaitAllDelivered(time.Minute)
}

// The relay confirms a flip's position only once its WAL is flushed; when
// nothing would flush it (the WAL writer stopped, no other commits), the
// relay flushes it itself instead of holding the slot back forever.
func TestConfirmDoesNotWaitForeverForAFlush(t *testing.T) {
	c := ownCluster(t, map[string]string{"bgwriter_lru_maxpages": "0"})
	h := relaytest.NewAt(t, env, c.URL("postgres"), true)
	h.Cfg.HeartbeatInterval = -1
	r := h.Start()
	h.WaitStreaming(r)
	stopWALWriter(t, h.Pool)
	seq := 0
	relaytest.WriteN(t, h, 1, 10, &seq)
	end := h.CurrentLSN()
	h.WaitAllDelivered(time.Minute)
	h.WaitConfirmedPast(end)
}

// After a failover to a standby that lagged, the new primary's timeline forks
// below what the relay confirmed on the old one. A new leadership term must
// start from the slot's own position: confirming its memory of the old
// primary would skip the new primary's events in the fork.
func TestNewTermConfirmsFromTheSlotNotFromMemory(t *testing.T) {
	a := ownCluster(t, nil)
	ctx := context.Background()
	h1 := relaytest.NewAt(t, env, a.URL("postgres"), true)
	// The test's own role, to reach b while the relay's role cannot.
	if _, err := h1.Pool.Exec(ctx, `CREATE ROLE tester SUPERUSER LOGIN`); err != nil {
		t.Fatal(err)
	}
	r := h1.Start()
	h1.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h1, 1, 10, &seq)
	h1.WaitAllDelivered(time.Minute)
	r.Stop(t)

	// b is a copy of a as it is now, slot included: a standby that will
	// lag behind everything a does from here on.
	b := forkCluster(t, a)
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write", a.Port(), b.Port())
	h := relaytest.NewAt(t, env, url, false)
	r = h.Start()
	h.WaitStreaming(r)
	relaytest.WriteN(t, h, 1, 1000, &seq)
	h.WaitAllDelivered(time.Minute)
	onA := h.CurrentLSN()
	h.WaitConfirmedPast(onA)

	// Fail over to b, keeping the relay out until b has new events whose
	// flip the test holds up: the relay has no reason to confirm anything
	// past them.
	hba := filepath.Join(b.DataDir(), "pg_hba.conf")
	orig, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, append([]byte("host all postgres 127.0.0.1/32 reject\n"), orig...), 0o600); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := a.StopServer(cctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	if err := b.StartServer(cctx); err != nil {
		t.Fatal(err)
	}
	onB := testenv.Pool(t, strings.Replace(b.URL("postgres"), "postgres@", "tester@", 1))
	before := walLSN(t, onB, "pg_current_wal_insert_lsn()")
	if before >= onA {
		t.Fatalf("b's WAL (%s) is not below what a confirmed (%s): no fork to test", before, onA)
	}
	for i := range 5 {
		if _, err := outbox.Publish(ctx, onB, "w.2", relaytest.Payload(2, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	hold, err := onB.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Rollback(ctx) }()
	if _, err := hold.Exec(ctx, `SELECT FROM bus.outbox WHERE NOT published_to_nats FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := onB.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	waitReply(t, onB, time.Now().Add(2*h.Cfg.StatusInterval))
	var confirmed string
	if err := onB.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdcrelay'`).Scan(&confirmed); err != nil {
		t.Fatal(err)
	}
	if got, _ := pglogrepl.ParseLSN(confirmed); got > before {
		t.Fatalf("slot on the new primary confirmed %s, past its unflipped events (from %s): the relay confirmed the old primary's position %s", got, before, onA)
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	h.WaitAllDelivered(time.Minute)
}

// ownCluster starts a PostgreSQL cluster for one test, which it may crash.
func ownCluster(t *testing.T, settings map[string]string) *pgcluster.Cluster {
	t.Helper()
	env.Cluster(t) // skips when the tests run against an external server
	dir, err := os.MkdirTemp("", "cdcrelay-own-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// The PATH's server binaries (Debian's 15), not the run's: run on 17 under
	// the matrix's load, TestNewTermConfirmsFromTheSlotNotFromMemory once
	// found no walsender on the new primary for a minute (not reproduced in
	// 4 quiet runs); until that is understood these tests keep the server
	// they were written on.
	s := map[string]string{"wal_sender_timeout": "20s"}
	for k, v := range settings {
		s[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}

// forkCluster stops a cleanly, copies its data directory into a new cluster
// and starts a again; the copy is left stopped, on a port of its own.
func forkCluster(t *testing.T, a *pgcluster.Cluster) *pgcluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := a.StopServer(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cdcrelay-fork-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if out, err := exec.Command("cp", "-a", a.DataDir(), filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("copy data directory: %v: %s", err, out)
	}
	if err := a.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Settings: map[string]string{"wal_sender_timeout": "20s"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	if err := b.StopServer(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	return b
}

func dropSlot(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	// The walsender lets go of the slot a moment after the relay disconnects.
	testenv.Eventually(t, 10*time.Second, func() error {
		_, err := pool.Exec(context.Background(), `SELECT pg_drop_replication_slot('cdcrelay')`)
		return err
	})
}

func flipped(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM bus.outbox WHERE published_to_nats`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func deadLetterExists(ctx context.Context, pool *pgxpool.Pool, eventID string) error {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM bus.dead_letter WHERE event_id = $1`, eventID).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no dead letter for %s", eventID)
	}
	return nil
}

func walLSN(t *testing.T, pool *pgxpool.Pool, fn string) pglogrepl.LSN {
	t.Helper()
	var s string
	if err := pool.QueryRow(context.Background(), `SELECT `+fn+`::text`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	l, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// stopWALWriter suspends the server's WAL writer until the test ends (or
// the server is killed).
func stopWALWriter(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var pid int
	if err := pool.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'`).Scan(&pid); err != nil {
		t.Fatalf("find the WAL writer: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop the WAL writer: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
}

// waitReply waits until the slot's walsender has had a status update from
// the relay sent after t.
func waitReply(t *testing.T, pool *pgxpool.Pool, after time.Time) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		var reply *time.Time
		err := pool.QueryRow(context.Background(), `SELECT r.reply_time FROM pg_stat_replication r
JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = 'cdcrelay'`).Scan(&reply)
		if err != nil {
			return fmt.Errorf("walsender of the slot: %w", err)
		}
		if reply == nil || reply.Before(after) {
			return errors.New("no status update from the relay yet")
		}
		return nil
	})
}
