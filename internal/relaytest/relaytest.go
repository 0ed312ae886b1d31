// Package relaytest is the shared test harness of the relay: a migrated
// database, a stream, writers that encode their order into payloads, and the
// checks every delivery test makes (exactly once, in commit order, flipped,
// confirmed). It serves the in-process relay tests and the process-level ones.
package relaytest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/migrations"
	"github.com/cdcrelay/cdcrelay/outbox"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/slot"
)

// harness is one test's database, NATS server and relay configuration.
type Harness struct {
	T    *testing.T
	URL  string
	Pool *pgxpool.Pool
	NATS *testenv.NATS
	// Cfg is the configuration Start runs the relay with; tests adjust it first.
	Cfg relay.Config
}

func New(t *testing.T, env *testenv.Env, migrate bool) *Harness {
	t.Helper()
	return NewAt(t, env, env.DB(t), migrate)
}

// NewAt is New on a database the test made itself (a cluster of its own, a
// multi-host URL), with the package's NATS.
func NewAt(t *testing.T, env *testenv.Env, url string, migrate bool) *Harness {
	t.Helper()
	h := &Harness{T: t, URL: url, NATS: env.NATS(t)}
	h.Pool = testenv.Pool(t, h.URL)
	if migrate {
		h.Migrate()
	}
	h.EnsureStream("orders.>", "users.>", "w.>")
	h.Cfg = relay.Config{
		DatabaseURL: h.URL,
		NATSURL:     h.NATS.URL(),
		Election: election.Config{
			LockID:   rand.Int64N(1 << 40),
			Interval: 100 * time.Millisecond,
		},
		StatusInterval:    time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		ShutdownTimeout:   30 * time.Second,
	}
	h.Cfg.Publish.AckTimeout = 2 * time.Second
	h.Cfg.Publish.MaxBackoff = 500 * time.Millisecond
	// CheckStream checks the global commit order with them.
	h.Cfg.Publish.DiagnosticHeaders = true
	return h
}

func (h *Harness) Migrate() {
	h.T.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.URL)
	if err != nil {
		h.T.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := migrations.Apply(ctx, conn); err != nil {
		h.T.Fatalf("migrate: %v", err)
	}
}

func (h *Harness) EnsureStream(subjects ...string) {
	h.T.Helper()
	nc, err := nats.Connect(h.NATS.URL())
	if err != nil {
		h.T.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		h.T.Fatal(err)
	}
	if _, err := publish.EnsureStream(context.Background(), js, publish.StreamConfig{Name: "bus", Subjects: subjects}); err != nil {
		h.T.Fatal(err)
	}
}

// RunArgs is the command line of a cdcrelay process (`cdcrelay run`) on the
// harness's servers and lock, for the tests that run the binary.
func (h *Harness) RunArgs(extra ...string) []string {
	args := []string{"--log-format", "json", "run",
		"--database-url", h.URL,
		"--nats-url", h.NATS.URL(),
		"--lock-id", fmt.Sprint(h.Cfg.Election.LockID),
		"--election-interval", "250ms",
		"--ack-timeout", "2s",
	}
	return append(args, extra...)
}

// running is a relay started in this process.
type Relay struct {
	cancel context.CancelFunc
	done   chan error
	Relay  *relay.Relay
}

func (h *Harness) Start() *Relay {
	h.T.Helper()
	r, err := relay.New(h.Cfg, zerolog.New(zerolog.NewTestWriter(h.T)).Level(zerolog.InfoLevel).With().Timestamp().Logger())
	if err != nil {
		h.T.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &Relay{cancel: cancel, done: make(chan error, 1), Relay: r}
	go func() { run.done <- r.Run(ctx) }()
	h.T.Cleanup(func() { run.Stop(h.T) })
	return run
}

// Exited waits up to within for Run to return by itself, and returns its
// error; exited is false when it is still running.
func (run *Relay) Exited(within time.Duration) (exited bool, err error) {
	select {
	case err := <-run.done:
		run.cancel()
		run.cancel = nil
		return true, err
	case <-time.After(within):
		return false, nil
	}
}

// stop cancels the relay (a graceful shutdown) and waits for Run to return.
func (run *Relay) Stop(t *testing.T) {
	t.Helper()
	if run.cancel == nil {
		return
	}
	run.cancel()
	run.cancel = nil
	select {
	case err := <-run.done:
		if err != nil {
			t.Errorf("relay run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("relay did not stop within a minute")
	}
}

// payload encodes a writer number and its sequence, so the stream can be
// checked for per-writer order.
func Payload(writer, seq int) []byte {
	b := make([]byte, 16, 64)
	binary.BigEndian.PutUint64(b, uint64(writer))
	binary.BigEndian.PutUint64(b[8:], uint64(seq))
	return append(b, "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef"...)
}

func DecodePayload(b []byte) (writer, seq int, ok bool) {
	if len(b) < 16 {
		return 0, 0, false
	}
	return int(binary.BigEndian.Uint64(b)), int(binary.BigEndian.Uint64(b[8:])), true
}

// committedIDs returns the event ids of every row in the outbox.
func (h *Harness) CommittedIDs() map[string]bool {
	h.T.Helper()
	rows, err := h.Pool.Query(context.Background(), `SELECT event_id::text FROM bus.outbox`)
	if err != nil {
		h.T.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		h.T.Fatal(err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// waitAllDelivered waits until every outbox row is flipped and in the stream.
func (h *Harness) WaitAllDelivered(within time.Duration) {
	h.T.Helper()
	testenv.Eventually(h.T, within, func() error {
		var unpublished, total int
		if err := h.Pool.QueryRow(context.Background(),
			`SELECT count(*) FILTER (WHERE NOT published_to_nats), count(*) FROM bus.outbox`).Scan(&unpublished, &total); err != nil {
			return err
		}
		if unpublished > 0 {
			var sample string
			_ = h.Pool.QueryRow(context.Background(), `SELECT string_agg(format('id=%s subject=%s headers=%s created=%s', id, subject, headers, created_at), '; ')
FROM (SELECT * FROM bus.outbox WHERE NOT published_to_nats ORDER BY id LIMIT 5) s`).Scan(&sample)
			return fmt.Errorf("%d of %d rows not flipped, e.g. %s", unpublished, total, sample)
		}
		return nil
	})
}

// checkStream asserts: the stream holds exactly the committed events, once
// each; every writer's events are in its commit order; streamed events are in
// global commit order (their commit LSN header never goes back).
func (h *Harness) CheckStream() []testenv.Msg {
	h.T.Helper()
	want := h.CommittedIDs()
	msgs := testenv.StreamMessages(h.T, h.NATS.URL(), "bus")
	seen := make(map[string]bool, len(msgs))
	lastSeq := map[int]int{}
	var lastLSN pglogrepl.LSN
	for i, m := range msgs {
		if seen[m.ID] {
			h.T.Fatalf("message %d: event %s is in the stream twice", i, m.ID)
		}
		seen[m.ID] = true
		if !want[m.ID] {
			h.T.Fatalf("message %d: event %s in the stream but not committed in the outbox", i, m.ID)
		}
		if w, s, ok := DecodePayload(m.Data); ok {
			if prev, ok := lastSeq[w]; ok && s <= prev {
				h.T.Fatalf("message %d: writer %d seq %d after %d: out of order", i, w, s, prev)
			}
			lastSeq[w] = s
		}
		if v := m.Header.Get(publish.HeaderCommitLSN); v != "" {
			lsn, err := pglogrepl.ParseLSN(v)
			if err != nil {
				h.T.Fatalf("message %d: commit lsn %q: %v", i, v, err)
			}
			if lsn < lastLSN {
				h.T.Fatalf("message %d: commit lsn %s after %s: not in commit order", i, lsn, lastLSN)
			}
			lastLSN = lsn
		}
	}
	if len(seen) != len(want) {
		var missing []string
		for id := range want {
			if !seen[id] {
				missing = append(missing, id)
			}
		}
		sort.Strings(missing)
		h.T.Fatalf("stream has %d events, outbox %d; missing e.g. %v", len(seen), len(want), missing[:min(5, len(missing))])
	}
	return msgs
}

// slot returns the slot's confirmed flush LSN and whether it is active.
func (h *Harness) Slot() (pglogrepl.LSN, bool) {
	h.T.Helper()
	var lsn *string
	var active bool
	err := h.Pool.QueryRow(context.Background(),
		`SELECT confirmed_flush_lsn::text, active FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
		relay.DefaultSlot).Scan(&lsn, &active)
	if errors.Is(err, pgx.ErrNoRows) || lsn == nil {
		return 0, false
	}
	if err != nil {
		h.T.Fatal(err)
	}
	l, _ := pglogrepl.ParseLSN(*lsn)
	return l, active
}

// SlotTrusted reports whether the slot is in use and its initial backfill
// completed: from then on the relay streams every event from the slot,
// none from a backfill.
func (h *Harness) SlotTrusted() bool {
	h.T.Helper()
	if _, active := h.Slot(); !active {
		return false
	}
	m, err := slot.ReadMark(context.Background(), h.Pool, relay.DefaultSlot)
	if err != nil {
		h.T.Fatal(err)
	}
	return m.Done
}

func (h *Harness) WaitStreaming(r *Relay) {
	h.T.Helper()
	testenv.Eventually(h.T, time.Minute, func() error {
		if !r.Relay.Streaming() {
			return errors.New("relay not streaming yet")
		}
		return nil
	})
}

func (h *Harness) CurrentLSN() pglogrepl.LSN {
	h.T.Helper()
	var s string
	if err := h.Pool.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		h.T.Fatal(err)
	}
	l, err := pglogrepl.ParseLSN(s)
	if err != nil {
		h.T.Fatal(err)
	}
	return l
}

// waitConfirmedPast waits until the slot confirmed at least lsn.
func (h *Harness) WaitConfirmedPast(lsn pglogrepl.LSN) {
	h.T.Helper()
	testenv.Eventually(h.T, time.Minute, func() error {
		if got, _ := h.Slot(); got < lsn {
			return fmt.Errorf("slot confirmed %s, want ≥ %s", got, lsn)
		}
		return nil
	})
}

// Writers runs n concurrent writers through fn, each of which writes its
// events (one or more per transaction) and returns. It fails the test with
// the first writer's error; call it from the test's goroutine (RunWriters
// suits a background goroutine).
func Writers(ctx context.Context, t *testing.T, n int, fn func(ctx context.Context, w int, seq *int) error) {
	t.Helper()
	if err := RunWriters(ctx, n, fn); err != nil {
		t.Fatal(err)
	}
}

// RunWriters is Writers for any goroutine: it returns the first writer's
// error instead of failing the test.
func RunWriters(ctx context.Context, n int, fn func(ctx context.Context, w int, seq *int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			seq := 0
			if err := fn(ctx, w, &seq); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("writer %d: %w", w, err)
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// mixedWriter writes perWriter events for writer w on subject w.<w>, cycling
// through the ways services write: the client in single- and multi-event
// transactions, plain SQL, and transactions that roll back.
func MixedWriter(h *Harness, perWriter int) func(ctx context.Context, w int, seq *int) error {
	return func(ctx context.Context, w int, seq *int) error {
		subject := fmt.Sprintf("w.%d", w)
		written := 0
		for round := 0; written < perWriter; round++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			switch round % 4 {
			case 0: // one event, client
				err := pgx.BeginFunc(ctx, h.Pool, func(tx pgx.Tx) error {
					*seq++
					_, err := outbox.Publish(ctx, tx, subject, Payload(w, *seq), outbox.WithHeader("Writer", fmt.Sprint(w)))
					return err
				})
				if err != nil {
					return err
				}
				written++
			case 1: // several events in one transaction, client
				n := min(5, perWriter-written)
				err := pgx.BeginFunc(ctx, h.Pool, func(tx pgx.Tx) error {
					for i := 0; i < n; i++ {
						*seq++
						if _, err := outbox.Publish(ctx, tx, subject, Payload(w, *seq)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
				written += n
			case 2: // plain SQL, autocommit
				*seq++
				if _, err := h.Pool.Exec(ctx, `SELECT bus.publish($1, $2::bytea, '{"Writer":"sql"}'::jsonb)`, subject, Payload(w, *seq)); err != nil {
					return err
				}
				written++
			case 3: // rolled back: must never appear
				tx, err := h.Pool.Begin(ctx)
				if err != nil {
					return err
				}
				for i := 0; i < 3; i++ {
					if _, err := outbox.Publish(ctx, tx, subject, []byte("rolled back")); err != nil {
						return err
					}
				}
				if err := tx.Rollback(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

func (h *Harness) CheckRowsMatchStream(msgs []testenv.Msg) {
	h.T.Helper()
	type row struct {
		subject string
		payload []byte
		writer  *string
	}
	rows, err := h.Pool.Query(context.Background(), `SELECT event_id::text, subject, payload, headers->>'Writer' FROM bus.outbox`)
	if err != nil {
		h.T.Fatal(err)
	}
	byID := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.subject, &r.payload, &r.writer); err != nil {
			h.T.Fatal(err)
		}
		byID[id] = r
	}
	if err := rows.Err(); err != nil {
		h.T.Fatal(err)
	}
	for i, m := range msgs {
		r := byID[m.ID]
		if m.Subject != r.subject || !bytes.Equal(m.Data, r.payload) {
			h.T.Fatalf("message %d (%s): %s %q, row has %s %q", i, m.ID, m.Subject, m.Data, r.subject, r.payload)
		}
		if got := m.Header.Get("Writer"); (r.writer == nil) != (got == "") || (r.writer != nil && *r.writer != got) {
			h.T.Fatalf("message %d: header Writer=%q, row has %v", i, got, r.writer)
		}
		if bytes.Equal(m.Data, []byte("rolled back")) {
			h.T.Fatalf("message %d: a rolled-back event reached the stream", i)
		}
	}
}

// WalsenderPID is the backend pid of the walsender streaming the slot, 0
// when none does (or the slot does not exist).
func (h *Harness) WalsenderPID() int32 {
	h.T.Helper()
	var pid *int32
	err := h.Pool.QueryRow(context.Background(),
		`SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'cdcrelay' AND database = current_database()`).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0 // no slot: e.g. a new leader recreating it after an interrupted backfill
	}
	if err != nil {
		h.T.Fatal(err)
	}
	if pid == nil {
		return 0
	}
	return *pid
}

func WriteN(t *testing.T, h *Harness, w, n int, seq *int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		*seq++
		if _, err := outbox.Publish(ctx, h.Pool, fmt.Sprintf("w.%d", w), Payload(w, *seq)); err != nil {
			t.Fatal(err)
		}
	}
}
