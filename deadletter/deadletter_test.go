package deadletter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/deadletter"
	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/migrations"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

func setup(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := env.DB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	return testenv.Pool(t, url)
}

// record inserts an outbox row for subject, flips it and records it as a
// dead letter in one transaction, as the checkpoint does.
func record(t *testing.T, pool *pgxpool.Pool, subject string) *flow.Event {
	t.Helper()
	ctx := context.Background()
	e := &flow.Event{Subject: subject, Payload: []byte("p"), Headers: map[string][]string{"K": {"v"}}}
	if err := pool.QueryRow(ctx, `INSERT INTO bus.outbox (subject, payload, headers) VALUES ($1, $2, '{"K":["v"]}') RETURNING id, event_id`,
		subject, e.Payload).Scan(&e.ID, &e.EventID); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for range 2 { // recorded once per event, however often refused
		if err := deadletter.Queue(b, e, errors.New("no stream captures subject")); err != nil {
			t.Fatal(err)
		}
	}
	b.Queue(`UPDATE bus.outbox SET published_to_nats = true WHERE id = $1`, e.ID)
	b.Queue("COMMIT")
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestQueueRecordsOnceAndListCountsIt(t *testing.T) {
	pool := setup(t)
	ctx := context.Background()
	if c, err := deadletter.Count(ctx, pool); err != nil || c != (deadletter.Counts{}) {
		t.Fatalf("count of none = %+v, %v", c, err)
	}
	a, b := record(t, pool, "a.x"), record(t, pool, "a.y")

	list, err := deadletter.List(ctx, pool, false, 10)
	if err != nil || len(list) != 2 {
		t.Fatalf("list = %+v, %v", list, err)
	}
	d := list[0]
	if d.EventID != a.EventIDString() || d.OutboxID != a.ID || d.Subject != "a.x" || string(d.Payload) != "p" ||
		string(d.Headers) != `{"K": ["v"]}` || d.Error != "no stream captures subject" || d.ReplayedAt != nil || d.CreatedAt.IsZero() {
		t.Fatalf("dead letter = %+v", d)
	}
	if list, err := deadletter.List(ctx, pool, false, 1); err != nil || len(list) != 1 {
		t.Fatalf("list limit 1 = %d rows, %v", len(list), err)
	}
	if _, err := pool.Exec(ctx, `UPDATE bus.dead_letter SET replayed_at = now() WHERE event_id = $1`, a.EventID); err != nil {
		t.Fatal(err)
	}
	if ids, err := deadletter.Waiting(ctx, pool); err != nil || len(ids) != 1 || ids[0] != b.EventIDString() {
		t.Fatalf("waiting = %v, %v", ids, err)
	}
	if list, err := deadletter.List(ctx, pool, true, 10); err != nil || len(list) != 2 {
		t.Fatalf("list all = %d rows, %v", len(list), err)
	}
	c, err := deadletter.Count(ctx, pool)
	if err != nil || c.Total != 2 || c.Unreplayed != 1 || c.LatestAt.IsZero() {
		t.Fatalf("count = %+v, %v", c, err)
	}
}

// A replayed dead letter that the relay refuses again is waiting again,
// with the new reason, whether or not the replay stayed to confirm it
// (--wait 0, a wait that ran out, an interrupted CLI); a resend of an event
// not replayed changes nothing. Found by review: the second refusal was
// dropped (ON CONFLICT DO NOTHING), so the event was in neither the stream
// nor the list of dead letters waiting.
func TestRefusedAgainAfterAReplayIsWaitingAgain(t *testing.T) {
	pool := setup(t)
	ctx := context.Background()
	e := record(t, pool, "a.x")
	requeue := func(reason string) {
		t.Helper()
		b := &pgx.Batch{}
		if err := deadletter.Queue(b, e, errors.New(reason)); err != nil {
			t.Fatal(err)
		}
		if err := pool.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
	}
	requeue("a resend after a restart") // not replayed: stays as it was
	if list, err := deadletter.List(ctx, pool, false, 10); err != nil || len(list) != 1 || list[0].Error != "no stream captures subject" {
		t.Fatalf("after a resend: %+v, %v; want the first reason kept", list, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE bus.dead_letter SET replayed_at = now() WHERE event_id = $1::uuid`, e.EventIDString()); err != nil {
		t.Fatal(err)
	}
	requeue("JetStream refused the event: message too large")
	waiting, err := deadletter.Waiting(ctx, pool)
	if err != nil || len(waiting) != 1 || waiting[0] != e.EventIDString() {
		t.Fatalf("waiting %v, %v: the event refused again after its replay is not waiting", waiting, err)
	}
	if list, err := deadletter.List(ctx, pool, false, 10); err != nil || len(list) != 1 || list[0].Error != "JetStream refused the event: message too large" {
		t.Fatalf("list %+v, %v; want the new reason", list, err)
	}
}

func stream(t *testing.T) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	nc, err := nats.Connect(env.NATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "bus", Subjects: []string{"a.>"}})
	if err != nil {
		t.Fatal(err)
	}
	return js, s
}

// Replay puts the event back into the outbox once, under its event id;
// Confirm waits for the relay's flip, then finds the event in the stream or
// makes the dead letter wait again. Here the test plays the relay.
func TestReplayRequeuesOnceAndConfirmFindsTheEvent(t *testing.T) {
	pool := setup(t)
	js, s := stream(t)
	ctx := context.Background()
	if _, err := js.Publish(ctx, "a.before", nil); err != nil {
		t.Fatal(err)
	}

	var notCaptured *deadletter.NotCapturedError
	if _, err := deadletter.Replay(ctx, pool, js, s, record(t, pool, "b.x").EventIDString()); !errors.As(err, &notCaptured) ||
		err.Error() != "stream bus does not capture subject b.x" {
		t.Fatalf("replay of a subject not captured: %v", err)
	}
	if _, err := deadletter.Replay(ctx, pool, js, s, uuid.NewString()); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("replay of no dead letter: %v", err)
	}

	e := record(t, pool, "a.x")
	id := e.EventIDString()
	r, err := deadletter.Replay(ctx, pool, js, s, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "a.x" || r.Requeued == e.ID || r.Seq != 0 {
		t.Fatalf("replayed = %+v", r)
	}
	var rows int
	var subject string
	if err := pool.QueryRow(ctx, `SELECT count(*), max(subject) FROM bus.outbox WHERE event_id = $1 AND id = $2 AND NOT published_to_nats AND headers = '{"K":["v"]}'`,
		id, r.Requeued).Scan(&rows, &subject); err != nil || rows != 1 || subject != "a.x" {
		t.Fatalf("requeued rows %d %q, %v", rows, subject, err)
	}
	var already *deadletter.AlreadyReplayedError
	if _, err := deadletter.Replay(ctx, pool, js, s, id); !errors.As(err, &already) {
		t.Fatalf("second replay: %v", err)
	}

	var notPublished *deadletter.NotPublishedError
	if err := deadletter.Confirm(ctx, pool, s, &r, 200*time.Millisecond); !errors.As(err, &notPublished) || notPublished.OutboxID != r.Requeued {
		t.Fatalf("confirm before the relay flipped: %v", err)
	}
	flip := func(id int64) {
		t.Helper()
		if _, err := pool.Exec(ctx, `UPDATE bus.outbox SET published_to_nats = true WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
	}
	// Flipped but not in the stream: the relay refused it again.
	flip(r.Requeued)
	if err := deadletter.Confirm(ctx, pool, s, &r, time.Minute); !errors.Is(err, deadletter.ErrDeadLetteredAgain) {
		t.Fatalf("confirm of an event not in the stream: %v", err)
	}
	if ids, err := deadletter.Waiting(ctx, pool); err != nil || len(ids) != 2 || ids[1] != id {
		t.Fatalf("waiting after a refused replay = %v, %v", ids, err)
	}

	r, err = deadletter.Replay(ctx, pool, js, s, id)
	if err != nil {
		t.Fatal(err)
	}
	flip(r.Requeued)
	ack, err := js.Publish(ctx, "a.x", []byte("p"), jetstream.WithMsgID(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := deadletter.Confirm(ctx, pool, s, &r, time.Minute); err != nil || r.Seq != ack.Sequence {
		t.Fatalf("confirm: seq %d, want %d; %v", r.Seq, ack.Sequence, err)
	}
}
