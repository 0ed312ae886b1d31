package migrations

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestApplyFreshThenAgain(t *testing.T) {
	conn, _ := connect(t, env.DB(t))
	var lines []string
	res, err := Apply(testCtx(t), conn, WithProgress(func(l string) { lines = append(lines, l) }))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	want := embedded(t)
	if !slices.Equal(res.Applied, want) || res.Version != want[len(want)-1].Version {
		t.Fatalf("first run: applied %v version %d, want all of %v", res.Applied, res.Version, want)
	}
	if !slices.Equal(want[:3], []Migration{{1, "outbox"}, {2, "dead_letter"}, {3, "inbox"}}) {
		t.Errorf("embedded migrations start %v", want[:3])
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings on a fresh database: %q", res.Warnings)
	}
	if !slices.Contains(lines, "applied 0001_outbox") {
		t.Errorf("progress lines %q lack %q", lines, "applied 0001_outbox")
	}
	if got := queryOne[int](t, conn, `SELECT count(*) FROM bus.schema_migrations`); got != len(want) {
		t.Errorf("bus.schema_migrations has %d rows, want %d", got, len(want))
	}

	before := schemaOf(t, conn)
	// The event_id default is set once, not on every run (ACCESS EXCLUSIVE).
	defaultRow := `SELECT d.xmin::text FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
	                WHERE d.adrelid = 'bus.outbox'::regclass AND a.attname = 'event_id'`
	defaultBefore := queryOne[string](t, conn, defaultRow)

	version := res.Version
	res = mustApply(t, conn)
	if len(res.Applied) != 0 || res.Version != version {
		t.Fatalf("second run: applied %v version %d, want nothing, version %d", res.Applied, res.Version, version)
	}
	if after := schemaOf(t, conn); after != before {
		t.Errorf("second run changed the schema:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := queryOne[string](t, conn, defaultRow); got != defaultBefore {
		t.Errorf("second run rewrote the event_id default (xmin %s, was %s)", got, defaultBefore)
	}
}

func TestFreshSchema(t *testing.T) {
	conn, _ := connect(t, env.DB(t))
	mustApply(t, conn)

	if got := queryOne[string](t, conn, `SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef d
		JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
		WHERE d.adrelid = 'bus.outbox'::regclass AND a.attname = 'event_id'`); !strings.Contains(got, "uuidv7()") {
		t.Errorf("event_id default = %s, want bus.uuidv7()", got)
	}
	if got := queryOne[[]string](t, conn, `SELECT reloptions FROM pg_class WHERE oid = 'bus.outbox'::regclass`); !slices.Contains(got, "fillfactor=45") {
		t.Errorf("bus.outbox options = %v, want fillfactor=45", got)
	}
	if got := queryOne[string](t, conn, `SELECT attidentity::text FROM pg_attribute WHERE attrelid = 'bus.outbox'::regclass AND attname = 'id'`); got != "a" {
		t.Errorf("id identity = %q, want a (GENERATED ALWAYS)", got)
	}
	pub := queryOne[[]bool](t, conn, `SELECT ARRAY[pubinsert, pubupdate, pubdelete, pubtruncate, puballtables] FROM pg_publication WHERE pubname = 'cdcrelay_outbox'`)
	if !slices.Equal(pub, []bool{true, false, false, false, false}) {
		t.Errorf("publication insert/update/delete/truncate/alltables = %v, want inserts only", pub)
	}
	if got := queryOne[[]string](t, conn, `SELECT array_agg(schemaname || '.' || tablename) FROM pg_publication_tables WHERE pubname = 'cdcrelay_outbox'`); !slices.Equal(got, []string{"bus.outbox"}) {
		t.Errorf("publication tables = %v, want [bus.outbox]", got)
	}
	// A plain INSERT works: every other column has a default.
	exec(t, conn, `INSERT INTO bus.outbox (subject, payload) VALUES ('a.b', '\x00')`)
	for _, table := range []string{"bus.dead_letter", "bus.inbox"} {
		if got := queryOne[*string](t, conn, `SELECT to_regclass($1)::text`, table); got == nil {
			t.Errorf("%s missing", table)
		}
	}
}

// Two migrate runs at once: one waits for the other's lock, and each
// migration is applied exactly once.
func TestApplyConcurrent(t *testing.T) {
	url := env.DB(t)
	ctx := testCtx(t)
	const runs = 3
	conns := make([]*pgx.Conn, runs)
	for i := range conns {
		conns[i], _ = connect(t, url)
	}
	results := make([]Result, runs)
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() { results[i], errs[i] = Apply(ctx, conns[i]) })
	}
	wg.Wait()
	total := 0
	for i := range runs {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		total += len(results[i].Applied)
	}
	if want := len(embedded(t)); total != want {
		t.Errorf("the runs applied %d migrations between them, want %d", total, want)
	}
}

func TestApplyRefusesNewerDatabase(t *testing.T) {
	conn, _ := connect(t, env.DB(t))
	mustApply(t, conn)
	exec(t, conn, `INSERT INTO bus.schema_migrations (version, name) VALUES (9999, 'from_the_future')`)
	_, err := Apply(testCtx(t), conn)
	if err == nil || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("apply on a newer schema: err = %v, want one naming migration 9999", err)
	}
	// The lock was released: another session can take it.
	other, _ := connect(t, conn.Config().ConnString())
	if !queryOne[bool](t, other, `SELECT pg_try_advisory_lock($1, $2)`, LockKey1, LockKey2) {
		t.Error("migration lock still held after a failed run")
	}
}

func TestApplyWaitsForLock(t *testing.T) {
	url := env.DB(t)
	holder, _ := connect(t, url)
	exec(t, holder, `SELECT pg_advisory_lock($1, $2)`, LockKey1, LockKey2)

	conn, _ := connect(t, url)
	ctx, cancel := context.WithCancel(testCtx(t))
	waiting := make(chan string, 10)
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		_, err = Apply(ctx, conn, WithProgress(func(l string) { waiting <- l }))
	}()
	select {
	case line := <-waiting:
		if !strings.Contains(line, "waiting for the migration lock") {
			t.Errorf("first progress line = %q, want the wait", line)
		}
	case <-done:
		t.Fatalf("apply returned while another session held the lock: %v", err)
	}
	cancel()
	<-done
	if err == nil {
		t.Fatal("apply returned nil after its context was cancelled while waiting for the lock")
	}
}
