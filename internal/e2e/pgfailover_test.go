package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/internal/pgcluster"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// standbyName is the standby's physical slot and application_name.
const standbyName = "standby1"

// pgPair is a primary and a physical standby of it, each the test's own.
type pgPair struct {
	primary, standby *pgcluster.Cluster
	major            int
}

// startPair starts a primary and a streaming standby. With failoverSlots
// they are set up as the README says: on PostgreSQL 17 and later the standby
// keeps failover slots in sync (sync_replication_slots, hot_standby_feedback,
// primary_slot_name) and the primary lets logical walsenders send only what
// the standby has (synchronized_standby_slots).
func startPair(t *testing.T, failoverSlots bool) *pgPair {
	t.Helper()
	// Skips against an external server: this needs servers of its own, of
	// the package cluster's version.
	major, err := env.Cluster(t).Major()
	if err != nil {
		t.Fatal(err)
	}
	primarySettings := map[string]string{}
	standbySettings := map[string]string{"hot_standby_feedback": "on"}
	if major >= 17 && failoverSlots {
		primarySettings["synchronized_standby_slots"] = standbyName
		standbySettings["sync_replication_slots"] = "on"
	}
	p := &pgPair{major: major}
	p.primary = testenv.StartCluster(t, pgcluster.Options{Settings: primarySettings})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.standby, err = p.primary.StartStandby(ctx, pgcluster.StandbyOptions{
		Name: standbyName, Settings: testenv.ClusterOptions(pgcluster.Options{Settings: standbySettings}).Settings,
	})
	if err != nil {
		t.Fatalf("start standby: %v", err)
	}
	t.Cleanup(func() {
		if err := p.standby.Stop(); err != nil {
			t.Logf("stop standby: %v", err)
		}
	})
	return p
}

// standbySlot reads the standby's copy of the relay's slot: whether it
// exists, and whether it is synced and persistent (a temporary synced slot
// is dropped at promotion). The error says the standby cannot tell yet (it
// has not replayed the test's database, say).
func standbySlot(url string) (exists, persistent bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false, false, fmt.Errorf("connect standby: %w", err)
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT coalesce((to_jsonb(s)->>'synced')::boolean, false) AND NOT temporary
FROM pg_replication_slots s WHERE slot_name = 'cdcrelay'`).Scan(&persistent)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("read standby slot: %w", err)
	}
	return true, persistent, nil
}

// createdSlots counts the relay's "created slot" log lines: each is a slot
// created and a backfill run.
func createdSlots(t *testing.T, p *proc) int {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), `"message":"created slot`)
}

// TestPrimaryFailover kills the primary under load, promotes the standby,
// and checks the relay follows by itself (the URL names both servers) and
// loses nothing committed on the surviving timeline. Before PostgreSQL 17
// the slot does not survive: the relay recreates it and backfills. From 17
// on the standby holds a synced failover slot and the relay continues from
// it without a backfill.
func TestPrimaryFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a primary and a standby of its own")
	}
	pair := startPair(t, true)
	h := relaytest.New(t, testenv.Attach(pgcluster.MultiHostURL("postgres", pair.primary, pair.standby)), true)
	standbyURL := pair.standby.URL(dbName(t, h))
	p := startProc(t, "relay", h.RunArgs())
	testenv.Eventually(t, time.Minute, func() error {
		if !slotActive(h) {
			return errors.New("relay not streaming yet")
		}
		return nil
	})

	// Writers go on through the failover until the new primary has taken
	// writes too.
	// Until the standby's copy of the slot is persistent they write
	// slowly: that only needs the slot to move now and then, and a full
	// load would write hundreds of thousands of events meanwhile.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var slow atomic.Bool
	slow.Store(pair.major >= 17)
	one, all := retryingWriter(h, 1), retryingWriter(h, 1<<30)
	done := make(chan error, 1)
	go func() {
		done <- relaytest.RunWriters(ctx, 4, func(ctx context.Context, w int, seq *int) error {
			for ctx.Err() == nil && slow.Load() {
				if err := one(ctx, w, seq); err != nil {
					return err
				}
				time.Sleep(20 * time.Millisecond) // pacing, not synchronisation
			}
			return all(ctx, w, seq)
		})
	}()
	written := func(n int) func() error {
		return func() error {
			if got := outboxRows(h); got < n {
				return fmt.Errorf("%d events written, waiting for %d", got, n)
			}
			return nil
		}
	}
	if pair.major >= 17 {
		// Promoted before its copy is persistent, the standby drops it: the
		// relay would find no slot and backfill (still losing nothing).
		testenv.Eventually(t, 2*time.Minute, func() error {
			exists, persistent, err := standbySlot(standbyURL)
			if err != nil {
				return err
			}
			if !persistent {
				return fmt.Errorf("standby's copy of the slot: exists %v, synced and persistent %v", exists, persistent)
			}
			return nil
		})
		slow.Store(false)
	}
	checkFailoverStatus(t, h, pair.major >= 17)
	testenv.Eventually(t, 2*time.Minute, written(outboxRows(h)+5000))
	before := outboxRows(h)
	kctx, kcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer kcancel()
	if err := pair.primary.StopServer(kctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := pair.standby.Promote(kctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("primary killed with %d events committed; standby promoted in %v", before, time.Since(killed).Round(time.Millisecond))
	testenv.Eventually(t, 2*time.Minute, func() error { return slotStreamed(h) })
	logFailover(t, fmt.Sprintf("primary killed, standby promoted (PostgreSQL %d)", pair.major), time.Since(killed))
	testenv.Eventually(t, 2*time.Minute, written(before+3000))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.WaitAllDelivered(3 * time.Minute)
	phantoms := checkFailoverStream(t, h)
	t.Logf("PostgreSQL %d: %d events committed on the surviving timeline, %d phantoms (relayed from the old primary, never on the standby)",
		pair.major, len(h.CommittedIDs()), phantoms)

	created := createdSlots(t, p)
	switch {
	case pair.major >= 17 && created != 1:
		t.Fatalf("the relay created the slot %d times: it should have continued from the synced failover slot without a backfill", created)
	case pair.major >= 17 && phantoms > 0:
		t.Fatalf("%d events in the stream never reached the standby: synchronized_standby_slots should hold them back", phantoms)
	case pair.major < 17 && created != 2:
		t.Fatalf("the relay created the slot %d times, want 2 (at start and on the new primary)", created)
	}
}

// slotStreamed says whether a walsender streams the relay's slot, and why
// not; unlike slotActive it rides out the failover's connection errors.
func slotStreamed(h *relaytest.Harness) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var active bool
	err := h.Pool.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = 'cdcrelay' AND database = current_database()`).Scan(&active)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return errors.New("no slot yet")
	case err != nil:
		return err
	case !active:
		return errors.New("slot not streamed")
	}
	return nil
}

// outboxRows counts the outbox's rows, -1 when it cannot (the primary is
// gone and the standby not promoted yet, say).
func outboxRows(h *relaytest.Harness) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	if err := h.Pool.QueryRow(ctx, `SELECT count(*) FROM bus.outbox`).Scan(&n); err != nil {
		return -1
	}
	return n
}

// dbName is the harness's database.
func dbName(t *testing.T, h *relaytest.Harness) string {
	t.Helper()
	var name string
	if err := h.Pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// checkFailoverStream asserts what a failover keeps: every event committed
// on the surviving timeline is in the stream, none twice, and each writer's
// events in its commit order. Events in the stream but not in the outbox
// are phantoms (the old primary committed them and the relay published them,
// but the standby never received them); they are counted, not failed. Commit
// LSNs are not compared: the new timeline reuses positions the old one had
// passed.
func checkFailoverStream(t *testing.T, h *relaytest.Harness) (phantoms int) {
	t.Helper()
	want := h.CommittedIDs()
	msgs := testenv.StreamMessages(t, h.NATS.URL(), "bus")
	seen := make(map[string]bool, len(msgs))
	lastSeq := map[int]int{}
	for i, m := range msgs {
		if seen[m.ID] {
			t.Fatalf("message %d: event %s is in the stream twice", i, m.ID)
		}
		seen[m.ID] = true
		if !want[m.ID] {
			phantoms++
		}
		if w, s, ok := relaytest.DecodePayload(m.Data); ok {
			if prev, ok := lastSeq[w]; ok && s <= prev {
				t.Fatalf("message %d: writer %d seq %d after %d: out of order", i, w, s, prev)
			}
			lastSeq[w] = s
		}
	}
	var missing []string
	for id := range want {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d events committed on the surviving timeline are not in the stream, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	return phantoms
}

// TestFailoverToLaggingStandby promotes a standby that missed the last
// events the relay published (it was down while they were written, as an
// asynchronous standby can be far behind), then writes on the new primary
// while NATS is down and restarts the relay. The old primary's positions
// are ahead of everything on the new timeline: a relay that confirms them
// to the new slot skips the new events for good. The events the standby
// never received are phantoms: in the stream, in no outbox.
func TestFailoverToLaggingStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a primary and a standby of its own")
	}
	pair := startPair(t, false)
	h := relaytest.New(t, testenv.Attach(pgcluster.MultiHostURL("postgres", pair.primary, pair.standby)), true)
	p := startProc(t, "relay-1", h.RunArgs())
	testenv.Eventually(t, time.Minute, func() error { return slotStreamed(h) })
	seq := 0
	relaytest.WriteN(t, h, 0, 1000, &seq)
	h.WaitAllDelivered(time.Minute)
	// Everything so far (flips included) on the standby, then it stops.
	target := h.CurrentLSN()
	standbyAdmin := pair.standby.URL("postgres")
	testenv.Eventually(t, time.Minute, func() error {
		return standbyReplayed(standbyAdmin, target)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := pair.standby.StopServer(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	const lost = 3000
	relaytest.WriteN(t, h, 1, lost, &seq)
	h.WaitAllDelivered(time.Minute)
	old, _ := h.Slot()
	if err := pair.primary.StopServer(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	if err := pair.standby.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pair.standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, func() error { return slotStreamed(h) })
	// The relay has spoken to the new slot once (at its start), so a
	// remembered position would be confirmed by now.
	testenv.Eventually(t, time.Minute, func() error { return replied(h) })
	h.NATS.Stop(t)
	relaytest.WriteN(t, h, 2, 500, &seq)
	if now := h.CurrentLSN(); now >= old {
		t.Fatalf("the new timeline (%s) passed the old slot position %s: the test proves nothing", now, old)
	}
	p.kill()
	h.NATS.Start(t)
	startProc(t, "relay-2", h.RunArgs())
	h.WaitAllDelivered(2 * time.Minute)
	if phantoms := checkFailoverStream(t, h); phantoms != lost {
		t.Fatalf("%d phantoms, want the %d events the standby never received", phantoms, lost)
	}
}

// standbyReplayed says whether the standby replayed WAL up to lsn.
func standbyReplayed(url string, lsn pglogrepl.LSN) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn`, lsn.String()).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("standby has not replayed %s yet", lsn)
	}
	return nil
}

// replied says whether the relay's walsender got a status update.
func replied(h *relaytest.Harness) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ok bool
	err := h.Pool.QueryRow(ctx, `SELECT r.reply_time IS NOT NULL FROM pg_stat_replication r
JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = 'cdcrelay' AND s.database = current_database()`).Scan(&ok)
	switch {
	case err != nil:
		return err
	case !ok:
		return errors.New("no status update from the relay yet")
	}
	return nil
}

// checkFailoverStatus runs `cdcrelay status --json` and checks what it says
// of failover readiness: the primary, the failover slot, and the standby's
// persistent copy of the slot (read on the standby, which the URL names).
func checkFailoverStatus(t *testing.T, h *relaytest.Harness, ready bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "status", "--json", "--database-url", h.URL, "--nats-url", h.NATS.URL()).Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("cdcrelay status: %v", err)
	}
	var st struct {
		Failover struct {
			Ready        bool   `json:"ready"`
			Why          string `json:"why"`
			Primary      string `json:"primary"`
			FailoverSlot bool   `json:"failover_slot"`
			Copies       []struct {
				Host       string `json:"host"`
				Persistent bool   `json:"persistent"`
			} `json:"standby_slot_copies"`
		} `json:"failover"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("cdcrelay status --json: %v\n%s", err, out)
	}
	f := st.Failover
	t.Logf("status: failover ready %v: %s", f.Ready, f.Why)
	if f.Ready != ready || f.FailoverSlot != ready || f.Primary == "" {
		t.Fatalf("status says failover ready %v, failover slot %v, primary %q, want ready %v: %s", f.Ready, f.FailoverSlot, f.Primary, ready, out)
	}
	if ready && (len(f.Copies) != 1 || !f.Copies[0].Persistent) {
		t.Fatalf("status does not show the standby's persistent copy: %s", out)
	}
}
