package migrations

import (
	"slices"
	"strings"
	"testing"
)

// pollerOutbox is bus.outbox as the LISTEN/poll relay left it: a bigserial
// key, a nullable created_at, an extra column, the poller's partial index and
// its NOTIFY trigger.
const pollerOutbox = `
	CREATE SCHEMA bus;
	CREATE TABLE bus.outbox (
		id                bigserial PRIMARY KEY,
		subject           text NOT NULL,
		payload           bytea NOT NULL,
		published_to_nats boolean NOT NULL DEFAULT false,
		created_at        timestamptz DEFAULT now(),
		tenant            text
	);
	CREATE INDEX outbox_unpublished ON bus.outbox (id) WHERE published_to_nats = false;
	CREATE FUNCTION bus.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN PERFORM pg_notify('outbox', NEW.id::text); RETURN NEW; END $$;
	CREATE TRIGGER outbox_notify AFTER INSERT ON bus.outbox FOR EACH ROW EXECUTE FUNCTION bus.outbox_notify();
	INSERT INTO bus.outbox (subject, payload, published_to_nats, tenant)
	SELECT 'orders.' || i, convert_to('order ' || i, 'UTF8'), i <= 600, 't' || (i % 3)
	  FROM generate_series(1, 1000) AS i;
	UPDATE bus.outbox SET created_at = NULL WHERE id = 7;
`

func TestUpgradePollerOutbox(t *testing.T) {
	conn, notices := connect(t, env.DB(t))
	exec(t, conn, pollerOutbox)
	const rowsQuery = `SELECT string_agg(format('%s %s %s %s %s', id, subject, encode(payload, 'escape'), published_to_nats, tenant), ',' ORDER BY id) FROM bus.outbox`
	rowsBefore := queryOne[string](t, conn, rowsQuery)

	res := mustApply(t, conn)
	if want := embedded(t); !slices.Equal(res.Applied, want) {
		t.Fatalf("applied %v, want %v", res.Applied, want)
	}
	if got := queryOne[string](t, conn, rowsQuery); got != rowsBefore {
		t.Fatal("the upgrade changed existing rows")
	}
	if got := queryOne[int](t, conn, `SELECT count(DISTINCT event_id) FROM bus.outbox WHERE event_id IS NOT NULL`); got != 1000 {
		t.Errorf("%d distinct event ids on 1000 rows", got)
	}
	if got := queryOne[int](t, conn, `SELECT count(*) FROM bus.outbox WHERE created_at IS NULL OR headers IS NOT NULL OR published_at IS NOT NULL`); got != 0 {
		t.Errorf("%d rows with a NULL created_at or a non-NULL headers or published_at", got)
	}
	var cols []string
	for _, c := range []string{"event_id", "headers", "published_at"} {
		cols = append(cols, queryOne[string](t, conn, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'bus.outbox'::regclass AND attname = $1`, c))
	}
	if want := []string{"uuid", "jsonb", "timestamp with time zone"}; !slices.Equal(cols, want) {
		t.Errorf("added columns have types %v, want %v", cols, want)
	}
	checks := queryOne[[]string](t, conn, `SELECT array_agg(conname::text ORDER BY conname) FROM pg_constraint WHERE conrelid = 'bus.outbox'::regclass AND contype = 'c' AND convalidated`)
	for _, want := range []string{"outbox_subject_bad_dots", "outbox_subject_no_whitespace", "outbox_subject_no_wildcards", "outbox_subject_not_empty", "outbox_subject_too_long", "outbox_headers_shape"} {
		if !slices.Contains(checks, want) {
			t.Errorf("valid CHECK %s missing (have %v)", want, checks)
		}
	}
	if !queryOne[bool](t, conn, `SELECT EXISTS (SELECT FROM pg_publication_tables WHERE pubname = 'cdcrelay_outbox' AND schemaname = 'bus' AND tablename = 'outbox')`) {
		t.Error("publication cdcrelay_outbox does not publish bus.outbox")
	}
	if !slices.ContainsFunc(*notices, func(n string) bool { return strings.Contains(n, "filled 1 NULL bus.outbox.created_at") }) {
		t.Errorf("no notice about the NULL created_at; notices: %q", *notices)
	}

	// The poller's index and trigger stay, with a warning each.
	for _, name := range []string{"bus.outbox_unpublished"} {
		if queryOne[*string](t, conn, `SELECT to_regclass($1)::text`, name) == nil {
			t.Errorf("%s was dropped", name)
		}
	}
	for _, want := range []string{"index bus.outbox_unpublished uses published_to_nats", "trigger outbox_notify"} {
		if !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
			t.Errorf("no warning containing %q in %q", want, res.Warnings)
		}
	}

	// The upgraded table takes new events, with a v7 id from bus.publish and
	// the poller's columns at their defaults; the poller's trigger still fires.
	exec(t, conn, `LISTEN outbox`)
	id := queryOne[string](t, conn, `SELECT bus.publish('orders.new', 'x')::text`)
	if id[14] != '7' {
		t.Errorf("bus.publish returned %s, not a v7 UUID", id)
	}
	if got := queryOne[bool](t, conn, `SELECT published_to_nats FROM bus.outbox WHERE event_id = $1`, id); got {
		t.Error("new row starts published")
	}
	if _, err := conn.WaitForNotification(testCtx(t)); err != nil {
		t.Errorf("the poller's trigger did not notify: %v", err)
	}

	// And migrating again changes nothing.
	before := schemaOf(t, conn)
	if res := mustApply(t, conn); len(res.Applied) != 0 {
		t.Errorf("second run applied %v", res.Applied)
	}
	if after := schemaOf(t, conn); after != before {
		t.Errorf("second run changed the schema:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Rows the poller wrote that break a subject rule do not stop the upgrade:
// that CHECK stays NOT VALID (new rows are still checked) and is reported.
func TestUpgradeKeepsRowsThatBreakRules(t *testing.T) {
	conn, notices := connect(t, env.DB(t))
	exec(t, conn, pollerOutbox)
	exec(t, conn, `INSERT INTO bus.outbox (subject, payload) VALUES ('orders.*', 'x')`)

	res := mustApply(t, conn)
	if got := queryOne[bool](t, conn, `SELECT convalidated FROM pg_constraint WHERE conrelid = 'bus.outbox'::regclass AND conname = 'outbox_subject_no_wildcards'`); got {
		t.Error("outbox_subject_no_wildcards is valid although a row breaks it")
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "constraint outbox_subject_no_wildcards is NOT VALID") }) {
		t.Errorf("no warning about the NOT VALID constraint in %q", res.Warnings)
	}
	if !slices.ContainsFunc(*notices, func(n string) bool { return strings.Contains(n, "break outbox_subject_no_wildcards") }) {
		t.Errorf("no notice about the rows breaking the rule in %q", *notices)
	}
	_, err := conn.Exec(testCtx(t), `INSERT INTO bus.outbox (subject, payload) VALUES ('orders.>', 'x')`)
	if err == nil || !strings.Contains(err.Error(), "outbox_subject_no_wildcards") {
		t.Errorf("a new row with a wildcard: err = %v, want the CHECK to refuse it", err)
	}
}

func TestUpgradeResetsExistingPublication(t *testing.T) {
	conn, notices := connect(t, env.DB(t))
	exec(t, conn, pollerOutbox)
	exec(t, conn, `CREATE TABLE public.other (id int PRIMARY KEY)`)
	exec(t, conn, `CREATE PUBLICATION cdcrelay_outbox FOR TABLE public.other WITH (publish = 'insert, update, delete')`)
	mustApply(t, conn)
	got := queryOne[string](t, conn, `SELECT format('%s %s %s %s', pubinsert, pubupdate, pubdelete, pubtruncate) || ' ' || (SELECT string_agg(schemaname || '.' || tablename, ',') FROM pg_publication_tables WHERE pubname = 'cdcrelay_outbox') FROM pg_publication WHERE pubname = 'cdcrelay_outbox'`)
	if got != "t f f f bus.outbox" {
		t.Errorf("publication = %q, want inserts into bus.outbox only", got)
	}
	if !slices.ContainsFunc(*notices, func(n string) bool { return strings.Contains(n, "publication cdcrelay_outbox existed") }) {
		t.Errorf("no notice about the publication in %q", *notices)
	}
}

// What the upgrade cannot convert safely, it refuses: the transaction rolls
// back, nothing is recorded, and the error says what to do.
func TestUpgradeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, setup string
		want        []string // in the error text, hint included
	}{{
		name:  "jsonb payload",
		setup: `CREATE TABLE bus.outbox (id bigserial PRIMARY KEY, subject text NOT NULL, payload jsonb NOT NULL, published_to_nats boolean NOT NULL DEFAULT false); INSERT INTO bus.outbox (subject, payload) VALUES ('a', '{"a": 1}')`,
		want:  []string{"bus.outbox.payload is jsonb, cdcrelay needs bytea", "hint: Once every writer sends bytea", "convert_to(payload::text, 'UTF8')"},
	}, {
		name:  "text payload",
		setup: `CREATE TABLE bus.outbox (id bigserial PRIMARY KEY, subject text NOT NULL, payload text NOT NULL, published_to_nats boolean NOT NULL DEFAULT false)`,
		want:  []string{"bus.outbox.payload is text, cdcrelay needs bytea"},
	}, {
		name:  "integer id",
		setup: `CREATE TABLE bus.outbox (id serial PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL, published_to_nats boolean NOT NULL DEFAULT false)`,
		want:  []string{"bus.outbox.id is integer, cdcrelay needs bigint", "hint: Widen it"},
	}, {
		name:  "id not unique",
		setup: `CREATE TABLE bus.outbox (id bigserial, subject text NOT NULL, payload bytea NOT NULL, published_to_nats boolean NOT NULL DEFAULT false)`,
		want:  []string{"bus.outbox.id is not unique", "ADD PRIMARY KEY (id)"},
	}, {
		name:  "no published_to_nats",
		setup: `CREATE TABLE bus.outbox (id bigserial PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL)`,
		want:  []string{"has no published_to_nats column", "hint: Rename it"},
	}, {
		name:  "unknown published_to_nats",
		setup: `CREATE TABLE bus.outbox (id bigserial PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL, published_to_nats boolean); INSERT INTO bus.outbox (subject, payload) VALUES ('a', 'b')`,
		want:  []string{"1 rows of bus.outbox have a NULL published_to_nats", "hint: Decide for them"},
	}, {
		name:  "publication for all tables",
		setup: `CREATE TABLE bus.outbox (id bigserial PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL, published_to_nats boolean NOT NULL DEFAULT false); CREATE PUBLICATION cdcrelay_outbox FOR ALL TABLES`,
		want:  []string{"is FOR ALL TABLES", "DROP PUBLICATION cdcrelay_outbox"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			conn, _ := connect(t, env.DB(t))
			exec(t, conn, `CREATE SCHEMA bus; `+tc.setup)
			before := schemaOf(t, conn)
			_, err := Apply(testCtx(t), conn)
			if err == nil {
				t.Fatal("apply succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "apply migration 0001_outbox") {
				t.Errorf("error %q does not name the migration", err)
			}
			if got := queryOne[int](t, conn, `SELECT count(*) FROM bus.schema_migrations`); got != 0 {
				t.Errorf("%d migrations recorded after a refusal", got)
			}
			// Only the version table is new.
			var after []string
			for _, line := range strings.Split(schemaOf(t, conn), "\n") {
				if !strings.Contains(line, "schema_migrations") {
					after = append(after, line)
				}
			}
			if got := strings.Join(after, "\n"); got != before {
				t.Errorf("refusal changed the schema:\nbefore:\n%s\nafter:\n%s", before, got)
			}
		})
	}
}

// Other shapes a poller-era table comes in: a varchar subject (converted in
// place), no created_at (added), and an event_id of its own, partly NULL
// (kept where set, filled where not).
func TestUpgradePollerOutboxVariants(t *testing.T) {
	conn, notices := connect(t, env.DB(t))
	exec(t, conn, `
		CREATE SCHEMA bus;
		CREATE TABLE bus.outbox (
			id                bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
			event_id          uuid,
			subject           varchar(200) NOT NULL,
			payload           bytea NOT NULL,
			published_to_nats boolean NOT NULL DEFAULT false
		);
		INSERT INTO bus.outbox (event_id, subject, payload) VALUES
			('0190b6a4-0000-7000-8000-000000000001', 'a.b', 'x'), (NULL, 'a.c', 'y'), (NULL, 'a.d', 'z');`)
	mustApply(t, conn)

	if got := queryOne[string](t, conn, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'bus.outbox'::regclass AND attname = 'subject'`); got != "text" {
		t.Errorf("subject is %s, want text", got)
	}
	ids := queryOne[[]string](t, conn, `SELECT array_agg(event_id::text ORDER BY id) FROM bus.outbox`)
	if len(ids) != 3 || ids[0] != "0190b6a4-0000-7000-8000-000000000001" || ids[1] == ids[2] {
		t.Errorf("event ids %v: want the first kept and the others filled, distinct", ids)
	}
	if !slices.ContainsFunc(*notices, func(n string) bool { return strings.Contains(n, "filled 2 NULL bus.outbox.event_id") }) {
		t.Errorf("no notice about the filled event ids in %q", *notices)
	}
	if got := queryOne[int](t, conn, `SELECT count(*) FROM bus.outbox WHERE created_at IS NOT NULL`); got != 3 {
		t.Errorf("%d rows have a created_at, want 3", got)
	}
	exec(t, conn, `SELECT bus.publish('a.e', 'w')`)
}
