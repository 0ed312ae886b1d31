package retention_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox"
	"github.com/cdcrelay/cdcrelay/retention"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// connRunner runs on one ordinary connection, as the lock connection would.
func connRunner(t *testing.T, url string) election.Runner {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return func(ctx context.Context, fn func(ctx context.Context, conn *pgx.Conn) error) error {
		return fn(ctx, conn)
	}
}

// insert writes a row with the given state; ages are before now.
func insert(t *testing.T, h *relaytest.Harness, label string, createdAgo time.Duration, published bool, publishedAgo *time.Duration) {
	t.Helper()
	var pubAt any
	if publishedAgo != nil {
		pubAt = time.Now().Add(-*publishedAgo)
	}
	_, err := h.Pool.Exec(context.Background(), `INSERT INTO bus.outbox (subject, payload, created_at, published_to_nats, published_at)
VALUES ('w.prune', convert_to($1, 'UTF8'), $2, $3, $4)`, label, time.Now().Add(-createdAgo), published, pubAt)
	if err != nil {
		t.Fatal(err)
	}
}

func remaining(t *testing.T, h *relaytest.Harness) map[string]bool {
	t.Helper()
	rows, err := h.Pool.Query(context.Background(), `SELECT convert_from(payload, 'UTF8') FROM bus.outbox`)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range labels {
		out[l] = true
	}
	return out
}

func ago(d time.Duration) *time.Duration { return &d }

func TestPrunesOnlyPublishedRowsPastRetention(t *testing.T) {
	h := relaytest.New(t, env, true)
	const day = 24 * time.Hour
	// Old rows first, in id order as they would have been written.
	for i := 0; i < 7; i++ {
		insert(t, h, fmt.Sprintf("old-published-%d", i), 10*day, true, ago(10*day-time.Hour))
	}
	insert(t, h, "old-unpublished", 9*day, false, nil)
	insert(t, h, "poller-published", 9*day, true, nil) // published_at NULL: created_at counts
	insert(t, h, "old-but-published-late", 9*day, true, ago(day))
	insert(t, h, "old-published-last", 8*day, true, ago(8*day))
	insert(t, h, "young-published", time.Hour, true, ago(time.Hour))
	insert(t, h, "young-unpublished", time.Minute, false, nil)

	p, err := retention.New(retention.Config{Retention: 7 * day, Batch: 3}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.Prune(context.Background(), connRunner(t, h.URL))
	if err != nil {
		t.Fatal(err)
	}
	if n != 9 || p.Pruned() != 9 {
		t.Errorf("pruned %d rows (counter %d), want 9", n, p.Pruned())
	}
	got := remaining(t, h)
	for _, want := range []string{"old-unpublished", "old-but-published-late", "young-published", "young-unpublished"} {
		if !got[want] {
			t.Errorf("%s was pruned", want)
		}
	}
	if len(got) != 4 {
		t.Errorf("left %v, want the 4 rows within retention or unpublished", got)
	}

	// Nothing more to do: a second round deletes nothing.
	if n, err := p.Prune(context.Background(), connRunner(t, h.URL)); err != nil || n != 0 {
		t.Errorf("second round: %d rows, %v", n, err)
	}
}

func TestRejectsNonPositiveRetention(t *testing.T) {
	if _, err := retention.New(retention.Config{}, zerolog.Nop()); err == nil {
		t.Error("retention 0 accepted: the caller must not run a pruner then")
	}
}

// The relay runs the pruner while it leads, on its lock connection, and the
// rows it prunes are only those the relay published long enough ago.
func TestRelayPrunesWhileLeading(t *testing.T) {
	h := relaytest.New(t, env, true)
	insert(t, h, "ancient-published", 30*24*time.Hour, true, ago(30*24*time.Hour))
	p, err := retention.New(retention.Config{Retention: 2 * time.Second, Interval: 200 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h.Cfg.WhileLeading = append(h.Cfg.WhileLeading, p.Run)
	r := h.Start()
	h.WaitStreaming(r)
	for i := 0; i < 20; i++ {
		if _, err := outbox.Publish(context.Background(), h.Pool, "w.1", []byte("fresh")); err != nil {
			t.Fatal(err)
		}
	}
	h.WaitAllDelivered(time.Minute)
	// The ancient row and, 2 s after their flip, the fresh ones go.
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := len(remaining(t, h)); n > 0 {
			return fmt.Errorf("%d rows left", n)
		}
		return nil
	})
	if msgs := testenv.StreamMessages(t, h.NATS.URL(), "bus"); len(msgs) != 20 {
		t.Errorf("stream has %d messages, want 20", len(msgs))
	}
	if p.Failures() != 0 {
		t.Errorf("%d failed rounds", p.Failures())
	}
}
