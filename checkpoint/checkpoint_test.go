package checkpoint_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/checkpoint"
	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/migrations"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

func ev(id int64) flow.Item { return flow.Item{Event: &flow.Event{ID: id}} }
func mark(l pglogrepl.LSN) flow.Item {
	return flow.Item{Mark: l}
}

func TestWatermarkIsTheLastCompleteTransaction(t *testing.T) {
	for _, tc := range []struct {
		name  string
		items []flow.Item
		want  pglogrepl.LSN
		ok    bool
	}{
		{"empty", nil, 0, false},
		{"inside the first transaction", []flow.Item{ev(1), ev(2)}, 0, false},
		{"one complete", []flow.Item{ev(1), mark(100)}, 100, true},
		{"complete then partial", []flow.Item{ev(1), mark(100), ev(2), mark(200), ev(3)}, 200, true},
		{"marks only (heartbeats, empty transactions)", []flow.Item{mark(100), mark(150)}, 150, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := checkpoint.Watermark(tc.items)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Watermark = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func setup(t *testing.T) (*pgxpool.Pool, election.Runner) {
	t.Helper()
	url := env.DB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if _, err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context, fn func(context.Context, *pgx.Conn) error) error { return fn(ctx, conn) }
	return testenv.Pool(t, url), run
}

func insert(t *testing.T, pool *pgxpool.Pool, subject string) *flow.Event {
	t.Helper()
	e := &flow.Event{Subject: subject, Payload: []byte("p"), Headers: map[string][]string{"K": {"v"}}}
	var id uuid.UUID
	if err := pool.QueryRow(context.Background(), `INSERT INTO bus.outbox (subject, payload, headers) VALUES ($1, $2, '{"K":"v"}') RETURNING id, event_id`,
		subject, e.Payload).Scan(&e.ID, &id); err != nil {
		t.Fatal(err)
	}
	e.EventID = id
	return e
}

func TestFlipMarksRowsAndRecordsDeadLetters(t *testing.T) {
	pool, run := setup(t)
	a, b, c := insert(t, pool, "a.x"), insert(t, pool, "a.y"), insert(t, pool, "a.z")
	items := []flow.Item{{Event: a}, {Event: b, DeadLetter: errors.New("no stream captures subject")}, mark(10), {Event: c}}
	res, err := checkpoint.Flip(context.Background(), run, items)
	if err != nil || len(res.Missing) > 0 {
		t.Fatalf("flip: %v, missing %v", err, res.Missing)
	}
	if res.WALEnd == 0 {
		t.Fatal("flip reported no WAL end")
	}
	var flipped, stamped int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE published_to_nats), count(published_at) FROM bus.outbox`).Scan(&flipped, &stamped); err != nil {
		t.Fatal(err)
	}
	if flipped != 3 || stamped != 3 {
		t.Fatalf("%d flipped, %d with published_at; want 3", flipped, stamped)
	}
	var reason, headers string
	if err := pool.QueryRow(context.Background(), `SELECT error, headers::text FROM bus.dead_letter WHERE event_id = $1 AND outbox_id = $2`,
		b.EventIDString(), b.ID).Scan(&reason, &headers); err != nil {
		t.Fatal(err)
	}
	if reason != "no stream captures subject" || headers != `{"K": ["v"]}` {
		t.Fatalf("dead letter %q %s", reason, headers)
	}
	// Flipping again (a resend after a restart) changes nothing and is not an error.
	if res, err := checkpoint.Flip(context.Background(), run, items); err != nil || len(res.Missing) > 0 {
		t.Fatalf("second flip: %v, missing %v", err, res.Missing)
	}
}

// A row whose transaction is not yet visible to the flip's snapshot is
// flipped as soon as it becomes visible.
func TestFlipWaitsForRowsToBecomeVisible(t *testing.T) {
	pool, run := setup(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &flow.Event{Subject: "a.late", Payload: []byte("p")}
	if err := tx.QueryRow(ctx, `INSERT INTO bus.outbox (subject, payload) VALUES ('a.late', 'p') RETURNING id`).Scan(&e.ID); err != nil {
		t.Fatal(err)
	}
	firstTry := make(chan struct{})
	calls := 0
	counted := func(ctx context.Context, fn func(context.Context, *pgx.Conn) error) error {
		err := run(ctx, fn)
		if calls++; calls == 1 {
			close(firstTry)
		}
		return err
	}
	done := make(chan error, 1)
	go func() {
		res, err := checkpoint.Flip(ctx, counted, []flow.Item{{Event: e}})
		if err == nil && len(res.Missing) > 0 {
			err = errors.New("gave up on a row that became visible")
		}
		done <- err
	}()
	<-firstTry // the first flip ran while the row was invisible
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var flipped bool
	if err := pool.QueryRow(ctx, `SELECT published_to_nats FROM bus.outbox WHERE id = $1`, e.ID).Scan(&flipped); err != nil || !flipped {
		t.Fatalf("flipped %v, %v", flipped, err)
	}
}
