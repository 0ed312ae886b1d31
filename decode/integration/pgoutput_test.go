package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/decode"
	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// migratedOutbox mirrors what `cdcrelay migrate` creates (written by hand so
// this test does not depend on the migrations package).
const migratedOutbox = `
CREATE SCHEMA bus;
CREATE TABLE bus.outbox (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id uuid NOT NULL DEFAULT gen_random_uuid(),
	subject text NOT NULL,
	payload bytea NOT NULL,
	headers jsonb,
	created_at timestamptz NOT NULL DEFAULT now(),
	published_to_nats boolean NOT NULL DEFAULT false,
	published_at timestamptz
) WITH (fillfactor = 90);
CREATE TABLE public.other (id int PRIMARY KEY, v text);
CREATE PUBLICATION pub FOR TABLE bus.outbox, public.other;
`

// A poller-era outbox: other column order, extra columns, int4 id, varchar
// subject, json headers, timestamp without time zone.
const pollerOutbox = `
CREATE SCHEMA bus;
CREATE TABLE bus.outbox (
	tenant text NOT NULL DEFAULT 'acme',
	payload bytea NOT NULL,
	created_at timestamp NOT NULL DEFAULT now(),
	subject varchar(255) NOT NULL,
	headers json,
	event_id uuid NOT NULL DEFAULT gen_random_uuid(),
	id serial PRIMARY KEY,
	published_to_nats boolean NOT NULL DEFAULT false
);
CREATE PUBLICATION pub FOR TABLE bus.outbox WITH (publish = 'insert');
`

type input struct {
	subject string
	payload []byte
	headers *string // nil is SQL NULL
}

func str(s string) *string { return &s }

func inputs(t *testing.T) []input {
	big := make([]byte, 300_000) // stored out of line (TOAST), detoasted by pgoutput
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	return []input{
		{"orders.created", []byte(`{"order":1}`), str(`{"Trace-Id": "abc", "Tags": ["a", "b"]}`)},
		{"orders.paid", []byte{0, 1, 2, 0xff, '\\', '\''}, nil},
		{"orders.unicode", []byte("é"), str(`{"K": "é \"q\" \\ 😀 \u00e9", "E": []}`)},
		{"orders.bad_headers", []byte("x"), str(`{"n": 1}`)},
		{"orders.big", big, str(`{}`)},
		{"orders.empty", []byte{}, nil},
	}
}

func setup(t *testing.T, schema string) (context.Context, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	pool := testenv.Pool(t, env.DB(t))
	if _, err := pool.Exec(ctx, schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_create_logical_replication_slot('s', 'pgoutput')`); err != nil {
		t.Fatalf("create slot: %v", err)
	}
	return ctx, pool
}

func insert(ctx context.Context, t *testing.T, tx pgx.Tx, in input) {
	t.Helper()
	if _, err := tx.Exec(ctx, `INSERT INTO bus.outbox (subject, payload, headers) VALUES ($1, $2, $3)`,
		in.subject, in.payload, in.headers); err != nil {
		t.Fatalf("insert: %v", err)
	}
}

// peek returns the slot's pending pgoutput messages without consuming them;
// each row's data is exactly one message, as in an XLogData frame. settings
// are SET LOCAL for the decoding session (they shape text-mode output).
func peek(ctx context.Context, t *testing.T, pool *pgxpool.Pool, binary bool, settings ...string) [][]byte {
	t.Helper()
	var out [][]byte
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, s := range settings {
			if _, err := tx.Exec(ctx, "SET LOCAL "+s); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `SELECT data FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL,
			'proto_version', '1', 'publication_names', 'pub', 'binary', $1, 'messages', 'true')`,
			map[bool]string{true: "true", false: "false"}[binary])
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[[]byte])
		return err
	})
	if err != nil {
		t.Fatalf("peek changes: %v", err)
	}
	return out
}

// stream decodes msgs in order, checking transaction framing, and returns
// the outbox events and logical messages.
func stream(t *testing.T, msgs [][]byte) ([]*flow.Event, []decode.Message) {
	t.Helper()
	d := decode.New(decode.Table{})
	var events, pending []*flow.Event
	var logical []decode.Message
	var final pglogrepl.LSN
	kinds := map[decode.Kind]int{}
	for i, b := range msgs {
		// The caller reuses its buffer: scribble over it after each Decode.
		buf := bytes.Clone(b)
		m, err := d.Decode(buf)
		if err != nil {
			t.Fatalf("message %d (%q): %v", i, b[:1], err)
		}
		for j := range buf {
			buf[j] = 0xAA
		}
		kinds[m.Kind]++
		switch m.Kind {
		case decode.KindBegin:
			final = m.FinalLSN
		case decode.KindInsert:
			if m.Event.CommitLSN != final {
				t.Fatalf("event commit LSN %s, begin said %s", m.Event.CommitLSN, final)
			}
			pending = append(pending, m.Event)
		case decode.KindCommit:
			if m.EndLSN <= m.CommitLSN {
				t.Fatalf("commit end LSN %s not after commit LSN %s", m.EndLSN, m.CommitLSN)
			}
			events, pending = append(events, pending...), nil
		case decode.KindMessage:
			logical = append(logical, m)
		}
	}
	t.Logf("message kinds: %v", kinds)
	return events, logical
}

type stored struct {
	ev      flow.Event
	headers *string
}

// storedRows reads the outbox as the backfill does, with SQL.
func storedRows(ctx context.Context, t *testing.T, pool *pgxpool.Pool) []stored {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT id, event_id, subject, payload, headers::text, created_at::timestamptz FROM bus.outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for rows.Next() {
		var s stored
		if err := rows.Scan(&s.ev.ID, &s.ev.EventID, &s.ev.Subject, &s.ev.Payload, &s.headers, &s.ev.CreatedAt); err != nil {
			t.Fatal(err)
		}
		if s.headers != nil {
			s.ev.Headers, s.ev.Problem = decode.ParseHeaders([]byte(*s.headers))
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func compare(t *testing.T, mode string, got []*flow.Event, want []stored) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, %d rows", mode, len(got), len(want))
	}
	for i, g := range got {
		w := want[i].ev
		if g.ID != w.ID || g.EventID != w.EventID || g.Subject != w.Subject || !bytes.Equal(g.Payload, w.Payload) ||
			!reflect.DeepEqual(g.Headers, w.Headers) || !g.CreatedAt.Equal(w.CreatedAt) {
			t.Fatalf("%s: event %d\n got id=%d %s %q %d bytes %v %v\nwant id=%d %s %q %d bytes %v %v", mode, i,
				g.ID, g.EventIDString(), g.Subject, len(g.Payload), g.Headers, g.CreatedAt,
				w.ID, w.EventIDString(), w.Subject, len(w.Payload), w.Headers, w.CreatedAt)
		}
		if (g.Problem == nil) != (w.Problem == nil) {
			t.Fatalf("%s: event %d (%s): problem %v, SQL path says %v", mode, i, g.Subject, g.Problem, w.Problem)
		}
	}
}

// modes are the output shapes a walsender can produce: binary (PG14+, what
// the relay asks for), text, and text with the settings that change it.
// shows is a pattern in the migrated outbox's messages proving the mode is
// in effect.
var modes = []struct {
	name     string
	binary   bool
	settings []string
	shows    string
}{
	{"binary", true, nil, `\x00\x00\x00\x0b\{"order":1\}`},
	{"text", false, nil, `\\x7b226f72646572223a317d.*\+00[tn]`},
	{"text/offset zone/escape bytea", false, []string{"TimeZone = 'Asia/Kolkata'", "bytea_output = 'escape'"}, `\\000\\001\\002\\377\\\\'.*\+05:30[tn]`},
	{"text/negative zone", false, []string{"TimeZone = 'America/St_Johns'"}, `-0[23]:30[tn]`},
}

func TestRealServerOutput(t *testing.T) {
	ctx, pool := setup(t, migratedOutbox)
	ins := inputs(t)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		insert(ctx, t, tx, ins[0])
		insert(ctx, t, tx, ins[1])
		_, err := tx.Exec(ctx, `SELECT pg_logical_emit_message(true, 'cdcrelay', 'in tx')`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_logical_emit_message(false, 'cdcrelay', 'heartbeat')`); err != nil {
		t.Fatal(err)
	}
	// Things the relay must skip: other tables, and its own flips.
	if _, err := pool.Exec(ctx, `INSERT INTO public.other VALUES (1, 'a'); UPDATE public.other SET v = 'b'; DELETE FROM public.other;
		UPDATE bus.outbox SET published_to_nats = true, published_at = now() WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	// A schema change mid-stream sends a new Relation for the same OID.
	if _, err := pool.Exec(ctx, `ALTER TABLE bus.outbox ADD COLUMN shard int NOT NULL DEFAULT 3`); err != nil {
		t.Fatal(err)
	}
	for _, in := range ins[2:] {
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { insert(ctx, t, tx, in); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	want := storedRows(ctx, t, pool)
	if want[3].ev.Problem == nil || want[4].ev.Headers != nil {
		t.Fatalf("SQL path: bad headers not flagged or {} not nil: %+v", want)
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			msgs := peek(ctx, t, pool, m.binary, m.settings...)
			events, logical := stream(t, msgs)
			compare(t, m.name, events, want)
			if !regexp.MustCompile("(?s)" + m.shows).Match(bytes.Join(msgs, nil)) {
				t.Fatalf("no message shows %s: is the mode in effect?", m.shows)
			}
			if len(logical) != 2 ||
				!logical[0].Transactional || logical[0].Prefix != "cdcrelay" || string(logical[0].Content) != "in tx" ||
				logical[1].Transactional || string(logical[1].Content) != "heartbeat" || logical[1].MessageLSN == 0 {
				t.Fatalf("logical messages: %+v", logical)
			}
			relations := 0
			for _, b := range msgs {
				if b[0] == 'R' && bytes.Contains(b, []byte("outbox\x00")) {
					relations++
				}
			}
			if relations < 2 {
				t.Fatalf("want the outbox Relation sent again after ALTER TABLE, got %d", relations)
			}
		})
	}
}

func TestRealServerPollerOutbox(t *testing.T) {
	ctx, pool := setup(t, pollerOutbox)
	for _, in := range inputs(t) {
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { insert(ctx, t, tx, in); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// created_at is a timestamp without time zone: the decoder reads it as
	// UTC, so compare with SQL reading it in UTC too.
	if _, err := pool.Exec(ctx, `ALTER DATABASE `+pool.Config().ConnConfig.Database+` SET TimeZone = 'UTC'`); err != nil {
		t.Fatal(err)
	}
	pool.Reset()
	want := storedRows(ctx, t, pool)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			events, _ := stream(t, peek(ctx, t, pool, m.binary, m.settings...))
			compare(t, m.name, events, want)
		})
	}
}

func TestRealServerOutboxNotMigrated(t *testing.T) {
	ctx, pool := setup(t, `CREATE SCHEMA bus;
		CREATE TABLE bus.outbox (id bigserial PRIMARY KEY, subject text NOT NULL, payload jsonb NOT NULL);
		CREATE PUBLICATION pub FOR TABLE bus.outbox;`)
	if _, err := pool.Exec(ctx, `INSERT INTO bus.outbox (subject, payload) VALUES ('a', '{}')`); err != nil {
		t.Fatal(err)
	}
	msgs := peek(ctx, t, pool, true)
	d := decode.New(decode.Table{})
	var err error
	for _, b := range msgs {
		if _, err = d.Decode(b); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), `column "payload" has type jsonb, want bytea; apply cdcrelay's migrations`) {
		t.Fatalf("decoding an unmigrated outbox: %v", err)
	}
}
