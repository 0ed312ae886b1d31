package migrations

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Querier runs a query: *pgx.Conn, pgx.Tx, *pgxpool.Pool and *pgxpool.Conn
// satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// The checks Inspect runs. Each row is one finding, already worded for an
// operator. They mostly find what a poller-era table brings along, which
// migration 0001 leaves in place on purpose (see its header).
var inspections = []struct{ what, query string }{
	{"indexes that break HOT", `
		-- pg_depend links an index to every column its keys, expressions and
		-- predicate use.
		SELECT DISTINCT format('index %s uses %s, so the relay''s flip of published_to_nats cannot be a HOT update and writes every index again; once no poller needs it: DROP INDEX CONCURRENTLY %s',
		                       i.indexrelid::regclass, a.attname, i.indexrelid::regclass)
		  FROM pg_index i
		  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
		                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid
		  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = d.refobjsubid
		 WHERE i.indrelid = 'bus.outbox'::regclass
		   AND a.attname IN ('published_to_nats', 'published_at')
		 ORDER BY 1`},
	{"triggers", `
		SELECT format('trigger %I on bus.outbox runs on every insert or flip; if it is the poller''s NOTIFY trigger, drop it once the poller is retired', tgname)
		  FROM pg_trigger
		 WHERE tgrelid = 'bus.outbox'::regclass AND NOT tgisinternal
		   AND tgname <> 'outbox_insert_outside_replication_origin' -- sql/40_outbox_origin_guard.sql
		 ORDER BY tgname`},
	{"origin guard", `
		-- sql/40_outbox_origin_guard.sql leaves a disabled guard alone.
		SELECT format('trigger %I on bus.outbox is disabled, so cdcrelay streams unfiltered and its walsender decodes every flip; once nothing writes outbox rows under a replication origin: ALTER TABLE bus.outbox ENABLE ALWAYS TRIGGER %I, then run cdcrelay migrate again', tgname, tgname)
		  FROM pg_trigger
		 WHERE tgrelid = 'bus.outbox'::regclass AND tgname = 'outbox_insert_outside_replication_origin' AND tgenabled <> 'A'`},
	{"origin guard missing", `
		SELECT 'bus.outbox has no origin guard (trigger outbox_insert_outside_replication_origin), so cdcrelay streams unfiltered and its walsender decodes every flip; migrate installs it when the owner of bus.outbox_refuse_replication_origin() may execute pg_replication_origin_session_is_setup(), no subscription writes bus.outbox, and writers let go of the table within 5 s'
		 WHERE current_setting('server_version_num')::int >= 160000
		   AND NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'bus.outbox'::regclass AND tgname = 'outbox_insert_outside_replication_origin')`},
	{"constraints not valid", `
		SELECT format('constraint %I is NOT VALID: rows written before the upgrade break it (unpublished ones will be dead-lettered); fix or delete them, then ALTER TABLE bus.outbox VALIDATE CONSTRAINT %I', conname, conname)
		  FROM pg_constraint
		 WHERE conrelid = 'bus.outbox'::regclass AND NOT convalidated
		 ORDER BY conname`},
	{"checks the flip evaluates", `
		-- PostgreSQL evaluates every CHECK on every UPDATE; migration 0005
		-- guards cdcrelay's own rules this way.
		SELECT format('CHECK %I on bus.outbox is evaluated again on every flip of published_to_nats; if it only guards what writers insert, make it CHECK (published_to_nats OR (...))', conname)
		  FROM pg_constraint
		 WHERE conrelid = 'bus.outbox'::regclass AND contype = 'c'
		   AND pg_get_expr(conbin, conrelid) NOT LIKE '(published_to_nats OR %'
		 ORDER BY conname`},
	{"columns writers cannot fill", `
		SELECT format('column bus.outbox.%I is NOT NULL without a default: bus.publish and outbox.Publish do not set it, so their inserts fail; give it a default or drop NOT NULL', attname)
		  FROM pg_attribute
		 WHERE attrelid = 'bus.outbox'::regclass AND attnum > 0 AND NOT attisdropped
		   AND attnotnull AND NOT atthasdef AND attidentity = '' AND attgenerated = ''
		   AND attname NOT IN ('subject', 'payload', 'event_id')
		 ORDER BY attnum`},
}

// Inspect reports what about bus.outbox will cost or fail later, one line
// each: indexes that stop the relay's flip from being a HOT update, triggers
// left from the poller, a disabled origin guard, CHECKs that existing rows break or that the flip
// evaluates, columns that bus.publish cannot fill. It changes nothing. Apply runs it after migrating.
func Inspect(ctx context.Context, q Querier) ([]string, error) {
	var found []string
	for _, in := range inspections {
		rows, _ := q.Query(ctx, in.query)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("inspect bus.outbox: %s: %w", in.what, err)
		}
		found = append(found, lines...)
	}
	return found, nil
}
