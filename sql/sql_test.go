package sql_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/migrations/migratetest"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

func setup(t *testing.T) (context.Context, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx, migratetest.Pool(t, env)
}

func checkV7(t *testing.T, id uuid.UUID, notBefore, notAfter time.Time) {
	t.Helper()
	if id.Version() != 7 || id.Variant() != uuid.RFC4122 {
		t.Fatalf("%s: version %d variant %v, want 7 and RFC 4122", id, id.Version(), id.Variant())
	}
	sec, nsec := id.Time().UnixTime()
	at := time.Unix(sec, nsec)
	// The UUID holds milliseconds; allow for the truncation and clock skew
	// between this process and the server (same machine).
	if at.Before(notBefore.Add(-time.Second)) || at.After(notAfter.Add(time.Second)) {
		t.Errorf("%s carries time %v, outside [%v, %v]", id, at, notBefore, notAfter)
	}
}

func TestPublishFromSQL(t *testing.T) {
	ctx, pool := setup(t)
	before := time.Now()
	var id uuid.UUID
	if err := pool.QueryRow(ctx, `SELECT bus.publish('orders.created', '\x0001ff'::bytea, '{"Trace-Id": "abc", "Tags": ["a", "b"]}')`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	checkV7(t, id, before, time.Now())

	var subject, headers string
	var payload []byte
	var published bool
	err := pool.QueryRow(ctx, `SELECT subject, payload, headers::text, published_to_nats FROM bus.outbox WHERE event_id = $1`, id).
		Scan(&subject, &payload, &headers, &published)
	if err != nil {
		t.Fatalf("row for %s: %v", id, err)
	}
	if subject != "orders.created" || string(payload) != "\x00\x01\xff" || headers != `{"Tags": ["a", "b"], "Trace-Id": "abc"}` || published {
		t.Errorf("row = %q %q %s %v", subject, payload, headers, published)
	}
}

// The text overload takes untyped literals, keeping backslashes as they are;
// a bytea argument still goes to the bytea form.
func TestPublishOverloads(t *testing.T) {
	ctx, pool := setup(t)
	for _, tc := range []struct {
		name, call string
		args       []any
		want       string
	}{
		{"untyped literal", `SELECT bus.publish('a.b', 'C:\x41 {"k": 1}')`, nil, `C:\x41 {"k": 1}`},
		{"untyped literal, named", `SELECT bus.publish(subject => 'a.b', payload => 'hi', headers => NULL)`, nil, "hi"},
		{"text with non-ASCII", `SELECT bus.publish('a.b', 'grüße'::text)`, nil, "grüße"},
		{"bytea literal", `SELECT bus.publish('a.b', '\x41'::bytea)`, nil, "A"},
		{"bytea parameter", `SELECT bus.publish($1, $2::bytea)`, []any{"a.b", []byte{0, 'A'}}, "\x00A"},
		// With an untyped parameter the server picks the text form, so a
		// driver sends the bytes as text: fine for UTF-8.
		{"untyped parameter", `SELECT bus.publish($1, $2)`, []any{"a.b", "plain"}, "plain"},
		{"jsonb rendered as text", `SELECT bus.publish('a.b', jsonb_build_object('id', 1)::text)`, nil, `{"id": 1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var id uuid.UUID
			if err := pool.QueryRow(ctx, tc.call, tc.args...).Scan(&id); err != nil {
				t.Fatal(err)
			}
			var payload []byte
			if err := pool.QueryRow(ctx, `SELECT payload FROM bus.outbox WHERE event_id = $1`, id).Scan(&payload); err != nil {
				t.Fatal(err)
			}
			if string(payload) != tc.want {
				t.Errorf("payload = %q, want %q", payload, tc.want)
			}
		})
	}
}

// Binary bytes through an untyped parameter reach the text form and are
// refused as invalid UTF-8, not stored altered: the reason to write $2::bytea.
func TestPublishUntypedBinaryRefused(t *testing.T) {
	ctx, pool := setup(t)
	_, err := pool.Exec(ctx, `SELECT bus.publish($1, $2)`, "a.b", []byte{0xff, 0x00})
	if err == nil {
		t.Fatal("binary payload through an untyped parameter was accepted")
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM bus.outbox`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows written (%v)", n, err)
	}
}

func TestPublishFromSQLChecks(t *testing.T) {
	ctx, pool := setup(t)
	_, err := pool.Exec(ctx, `SELECT bus.publish('orders.*', 'x')`)
	if err == nil || !strings.Contains(err.Error(), "outbox_subject_no_wildcards") {
		t.Errorf("bus.publish with a wildcard: err = %v, want outbox_subject_no_wildcards", err)
	}
	_, err = pool.Exec(ctx, `SELECT bus.publish('orders.x', 'x', '{"Nats-Msg-Id": "1"}')`)
	if err == nil || !strings.Contains(err.Error(), "outbox_headers_reserved_name") {
		t.Errorf("bus.publish with a Nats- header: err = %v, want outbox_headers_reserved_name", err)
	}
}

// A plain INSERT gets its event_id from the column default, bus.uuidv7().
func TestInsertDefaultIsV7(t *testing.T) {
	ctx, pool := setup(t)
	before := time.Now()
	var id uuid.UUID
	if err := pool.QueryRow(ctx, `INSERT INTO bus.outbox (subject, payload) VALUES ('a.b', 'x') RETURNING event_id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	checkV7(t, id, before, time.Now())
}

// uuidv7 values made one after the other are version 7, distinct, and ordered
// by their time down to the sub-millisecond fraction (RFC 9562 method 3), so
// ids from one session sort in the order they were made, except that two made
// in the same microsecond are ordered by their random bits.
func TestUUIDv7Ordered(t *testing.T) {
	ctx, pool := setup(t)
	before := time.Now()
	rows, err := pool.Query(ctx, `SELECT bus.uuidv7() FROM generate_series(1, 5000) ORDER BY generate_series`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	seen := make(map[uuid.UUID]bool, len(ids))
	for i, id := range ids {
		checkV7(t, id, before, after)
		if seen[id] {
			t.Fatalf("%s repeats", id)
		}
		seen[id] = true
		if i > 0 && clock(id) < clock(ids[i-1]) {
			t.Fatalf("id %d (%s) is older than id %d (%s)", i, id, i-1, ids[i-1])
		}
	}
}

// clock is a v7 UUID's 48 bits of milliseconds and 12 bits of fraction.
func clock(id uuid.UUID) uint64 {
	var ms uint64
	for _, b := range id[:6] {
		ms = ms<<8 | uint64(b)
	}
	return ms<<12 | uint64(id[6]&0x0f)<<8 | uint64(id[7])
}
