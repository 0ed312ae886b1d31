package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/migrations/migratetest"
)

// Every pgx handle a service may hold works.
var (
	_ CopyExecer = pgx.Tx(nil)
	_ CopyExecer = (*pgx.Conn)(nil)
	_ CopyExecer = (*pgxpool.Pool)(nil)
	_ CopyExecer = (*pgxpool.Conn)(nil)
)

// stored is a bus.outbox row as the relay will read it.
type stored struct {
	EventID   uuid.UUID
	Subject   string
	Payload   []byte
	Headers   map[string]any
	CreatedAt time.Time
	Published bool
	PubAt     *time.Time
}

func rowsOf(t *testing.T, pool *pgxpool.Pool) []stored {
	t.Helper()
	rows, _ := pool.Query(testCtx(t), `SELECT event_id, subject, payload, headers, created_at, published_to_nats, published_at FROM bus.outbox ORDER BY id`)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stored])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPublishRolledBackLeavesNoRow(t *testing.T) {
	ctx := testCtx(t)
	pool := migratetest.Pool(t, env)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(ctx, tx, "orders.created", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := PublishBatch(ctx, tx, []Event{{Subject: "a.b"}, {Subject: "a.c"}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, pool); len(got) != 0 {
		t.Errorf("%d rows after rollback", len(got))
	}
}

func TestPublishCommittedLeavesOneRow(t *testing.T) {
	ctx := testCtx(t)
	pool := migratetest.Pool(t, env)
	before := time.Now()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	caller := map[string][]string{"Tags": {"a", "b"}}
	id, err := Publish(ctx, tx, "orders.created", []byte{0, 1, 2},
		WithHeader("Trace-Id", "t1"), WithHeaders(caller), WithHeader("Tags", "c"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(caller["Tags"], []string{"a", "b"}) {
		t.Errorf("WithHeaders changed the caller's map: %v", caller)
	}
	if id.Version() != 7 {
		t.Errorf("event id %s is not a UUIDv7", id)
	}
	got := rowsOf(t, pool)
	if len(got) != 1 {
		t.Fatalf("%d rows, want 1", len(got))
	}
	r := got[0]
	wantHeaders := map[string]any{"Trace-Id": "t1", "Tags": []any{"a", "b", "c"}}
	if r.EventID != id || r.Subject != "orders.created" || string(r.Payload) != "\x00\x01\x02" ||
		!equalJSON(r.Headers, wantHeaders) || r.Published || r.PubAt != nil {
		t.Errorf("row = %+v, want event %s, orders.created, 000102, headers %v, unpublished", r, id, wantHeaders)
	}
	if r.CreatedAt.Before(before.Add(-time.Second)) || r.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("created_at %v is not the time of the insert", r.CreatedAt)
	}
}

func equalJSON(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// A nil payload is an empty message; no headers is NULL.
func TestPublishEmpty(t *testing.T) {
	ctx := testCtx(t)
	pool := migratetest.Pool(t, env)
	if _, err := Publish(ctx, pool, "a", nil); err != nil {
		t.Fatal(err)
	}
	r := rowsOf(t, pool)[0]
	if r.Payload == nil || len(r.Payload) != 0 || r.Headers != nil {
		t.Errorf("payload %#v headers %#v, want empty and NULL", r.Payload, r.Headers)
	}
}

// An empty payload with a "Status" header is refused before it is written:
// NATS clients would never deliver it. With a payload it is fine.
func TestPublishRefusesStatusWithoutPayload(t *testing.T) {
	ctx := testCtx(t)
	pool := migratetest.Pool(t, env)
	if _, err := Publish(ctx, pool, "a", nil, WithHeader("Status", "shipped")); !errors.Is(err, ErrStatusWithoutPayload) {
		t.Fatalf("publish with Status and no payload: %v, want ErrStatusWithoutPayload", err)
	}
	if _, err := Publish(ctx, pool, "a", []byte("x"), WithHeader("Status", "shipped")); err != nil {
		t.Fatal(err)
	}
	if n := len(rowsOf(t, pool)); n != 1 {
		t.Fatalf("%d rows, want the one with a payload", n)
	}
}

// Publish and PublishBatch take every pgx handle.
func TestPublishThroughEachHandle(t *testing.T) {
	ctx := testCtx(t)
	pool := migratetest.Pool(t, env)
	conn, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pconn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pconn.Release()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	handles := map[string]CopyExecer{"pool": pool, "conn": conn, "pool conn": pconn, "tx": tx}
	for _, name := range slices.Sorted(maps.Keys(handles)) {
		if _, err := Publish(ctx, handles[name], "a.b", nil); err != nil {
			t.Errorf("Publish through %s: %v", name, err)
		}
		if _, err := PublishBatch(ctx, handles[name], []Event{{Subject: "a.b"}}); err != nil {
			t.Errorf("PublishBatch through %s: %v", name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(rowsOf(t, pool)); got != 2*len(handles) {
		t.Errorf("%d rows, want %d", got, 2*len(handles))
	}
}

func TestPublishBatch(t *testing.T) {
	// Below and above the size where PublishBatch switches to COPY.
	for _, n := range []int{1, copyFrom - 1, copyFrom, 3 * copyFrom} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx := testCtx(t)
			pool := migratetest.Pool(t, env)
			events := make([]Event, n)
			for i := range events {
				events[i] = Event{Subject: fmt.Sprintf("orders.%d", i), Payload: []byte{byte(i)}}
			}
			events[0].Headers = map[string][]string{"Trace-Id": {"t0"}}
			events[n-1].Payload = nil

			ids, err := PublishBatch(ctx, pool, events)
			if err != nil {
				t.Fatal(err)
			}
			got := rowsOf(t, pool)
			if len(ids) != n || len(got) != n {
				t.Fatalf("%d ids and %d rows for %d events", len(ids), len(got), n)
			}
			for i, r := range got {
				want := events[i].Payload
				if want == nil {
					want = []byte{}
				}
				if r.EventID != ids[i] || r.Subject != events[i].Subject || string(r.Payload) != string(want) {
					t.Fatalf("row %d = %+v, want event %s %s %x", i, r, ids[i], events[i].Subject, want)
				}
				if i > 0 && ids[i].String() <= ids[i-1].String() {
					t.Fatalf("event ids not increasing: %s after %s", ids[i], ids[i-1])
				}
			}
			if !equalJSON(got[0].Headers, map[string]any{"Trace-Id": "t0"}) || (n > 1 && got[1].Headers != nil) {
				t.Errorf("headers %v, %v", got[0].Headers, got[min(1, n-1)].Headers)
			}
		})
	}
}

// One bad event and nothing is written; the error names the event.
func TestPublishBatchRefusesAll(t *testing.T) {
	ctx := testCtx(t)
	pool := migratetest.Pool(t, env)
	_, err := PublishBatch(ctx, pool, []Event{{Subject: "a"}, {Subject: "b"}, {Subject: "c", Headers: map[string][]string{"Nats-Msg-Id": {"x"}}}})
	if !errors.Is(err, ErrReservedHeader) || !strings.Contains(err.Error(), "event 2") {
		t.Errorf("err = %v, want ErrReservedHeader for event 2", err)
	}
	if got := rowsOf(t, pool); len(got) != 0 {
		t.Errorf("%d rows written", len(got))
	}
	if ids, err := PublishBatch(ctx, pool, nil); ids != nil || err != nil {
		t.Errorf("empty batch: %v, %v", ids, err)
	}
}
