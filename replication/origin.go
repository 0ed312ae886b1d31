package replication

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// OriginVersion is the first server version (server_version_num) whose
// pgoutput takes the origin option.
const OriginVersion = 160000

// Replication origins keep the relay's own writes out of its stream's
// decoding. Every WAL record a session writes after
// pg_replication_origin_session_setup carries the session's origin, and a
// walsender started with origin 'none' (StartOptions.Origin) drops such
// changes in decoding, before it queues them (FilterByOrigin in decode.c),
// and skips the whole transaction at its commit. Without it, each flip's
// new row versions are decoded, queued (and spilled to disk when large)
// and handed to pgoutput, only to be thrown away there as updates.
//
// The filter is blind: it drops every change made under any origin,
// inserts into the outbox included. Those come from logical replication
// apply workers (a subscription writing bus.outbox, or firing an ALWAYS
// trigger that does) and other tools that replay changes under an origin.
// So a stream may filter only while the outbox refuses such inserts: see
// OriginGuard.

// FlipOrigin is the name of the replication origin that marks the writes of
// the relay of slot: its flips, dead letters, slot marks and pruning. Slot
// names are unique in a cluster, and so are origins.
func FlipOrigin(slot string) string { return "cdcrelay_" + slot }

// GuardTrigger is the trigger on the outbox that refuses inserts made under
// a replication origin (sql/40_outbox_origin_guard.sql).
const GuardTrigger = "outbox_insert_outside_replication_origin"

// originFunctions are what a role must be allowed to execute to create an
// origin and mark its session with it (PostgreSQL 15+ lets a superuser
// GRANT them; before, only superusers may call them).
func originFunctions() []string {
	return []string{"pg_replication_origin_create", "pg_replication_origin_session_setup"}
}

// OriginGrantsMissing lists the replication origin functions the session's
// role may not execute (as regprocedure text, ready for a GRANT): without
// them it cannot mark a session with an origin.
func OriginGrantsMissing(ctx context.Context, q Querier) ([]string, error) {
	var missing []string
	err := q.QueryRow(ctx, `
SELECT coalesce(array_agg(p.oid::regprocedure::text ORDER BY p.proname, p.oid), '{}')
FROM pg_proc p
WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY ($1) AND NOT has_function_privilege(p.oid, 'EXECUTE')`,
		originFunctions()).Scan(&missing)
	if err != nil {
		return nil, fmt.Errorf("read replication origin privileges: %w", err)
	}
	return missing, nil
}

// ErrUnguarded says the outbox may take inserts made under a replication
// origin: the guard trigger is missing or not ENABLE ALWAYS, the trigger or
// its function is not the version `cdcrelay migrate` recorded (dropped and
// recreated, disabled and enabled again, or replaced since), or the outbox
// has partitions or inheritors.
var ErrUnguarded = errors.New("bus.outbox does not refuse inserts made under a replication origin")

// OriginGuard returns the WAL position from which on every committed
// outbox insert went through the guard trigger, which refuses inserts made
// under a replication origin; a stream starting at or after it may filter
// by origin. It returns ErrUnguarded (wrapped, with the reason) when there
// is no such position.
func OriginGuard(ctx context.Context, q Querier) (pglogrepl.LSN, error) {
	var table bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('bus.outbox_origin_guard') IS NOT NULL`).Scan(&table); err != nil {
		return 0, fmt.Errorf("read the outbox's origin guard: %w", err)
	}
	if !table {
		return 0, fmt.Errorf("%w: table bus.outbox_origin_guard does not exist (cdcrelay migrate has not run since the upgrade)", ErrUnguarded)
	}
	return scanGuard(q.QueryRow(ctx, guardQuery, GuardTrigger))
}

// ProveGuard reads the WAL insert position, then checks the guard, in two
// statements of one round trip on conn (each statement reads the catalogs
// anew): when the guard still holds since the returned position since,
// every outbox insert committed below at went through it.
func ProveGuard(ctx context.Context, conn *pgx.Conn) (at, since pglogrepl.LSN, err error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_current_wal_insert_lsn()::text`)
	b.Queue(guardQuery, GuardTrigger)
	res := conn.SendBatch(ctx, b)
	defer func() {
		if cerr := res.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("prove the outbox's origin guard: %w", cerr)
		}
	}()
	var text string
	if err := res.QueryRow().Scan(&text); err != nil {
		return 0, 0, fmt.Errorf("read the WAL insert position: %w", err)
	}
	if at, err = pglogrepl.ParseLSN(text); err != nil {
		return 0, 0, fmt.Errorf("read the WAL insert position: %w", err)
	}
	since, err = scanGuard(res.QueryRow())
	return at, since, err
}

// guardQuery reads the guard: the recorded position, when the trigger and
// its function are the versions recorded and the trigger is ENABLE ALWAYS,
// and what else is needed to say why not.
const guardQuery = `
SELECT (SELECT tgenabled::text FROM pg_trigger WHERE tgrelid = 'bus.outbox'::regclass AND tgname = $1),
       EXISTS (SELECT FROM pg_inherits WHERE inhparent = 'bus.outbox'::regclass),
       (SELECT g.guarded_since::text
          FROM bus.outbox_origin_guard g
          JOIN pg_trigger t ON t.xmin = g.trigger_xmin
          JOIN pg_proc p ON p.oid = t.tgfoid AND p.xmin = g.function_xmin
         WHERE t.tgrelid = 'bus.outbox'::regclass AND t.tgname = $1 AND t.tgenabled = 'A'
           AND p.oid = to_regprocedure('bus.outbox_refuse_replication_origin()'))`

func scanGuard(row pgx.Row) (pglogrepl.LSN, error) {
	var (
		enabled, since *string
		children       bool
	)
	if err := row.Scan(&enabled, &children, &since); err != nil {
		return 0, fmt.Errorf("read the outbox's origin guard: %w", err)
	}
	switch {
	case children:
		// The publication covers them, and their triggers are their own.
		return 0, fmt.Errorf("%w: bus.outbox has partitions or inheritors, which the guard does not cover", ErrUnguarded)
	case enabled == nil:
		return 0, fmt.Errorf("%w: trigger %s does not exist (cdcrelay migrate installs it on PostgreSQL 16+ and says why when it cannot)", ErrUnguarded, GuardTrigger)
	case *enabled != "A":
		return 0, fmt.Errorf("%w: trigger %s is not ENABLE ALWAYS", ErrUnguarded, GuardTrigger)
	case since == nil:
		return 0, fmt.Errorf("%w: trigger %s or its function changed since cdcrelay migrate recorded them", ErrUnguarded, GuardTrigger)
	}
	lsn, err := pglogrepl.ParseLSN(*since)
	if err != nil {
		return 0, fmt.Errorf("read the outbox's origin guard: %w", err)
	}
	return lsn, nil
}

// ErrOriginInUse says another session has the origin set up.
var ErrOriginInUse = errors.New("replication origin in use by another session")

// SetupOrigin creates the origin name unless it exists and marks the
// session of conn with it: from then on every change conn makes carries it,
// until the session ends. The origin may be active in one session at a
// time; a session that still holds it (a deposed leader's, not yet gone)
// makes this fail with ErrOriginInUse.
func SetupOrigin(ctx context.Context, conn *pgx.Conn, name string) error {
	_, err := conn.Exec(ctx, `
SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT FROM pg_replication_origin WHERE roname = $1)`, name)
	if err != nil {
		return fmt.Errorf("create replication origin %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_replication_origin_session_setup($1)`, name); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == codeObjectInUse {
			err = fmt.Errorf("%w: %w", ErrOriginInUse, err)
		}
		return fmt.Errorf("set up replication origin %s on the session: %w", name, err)
	}
	return nil
}

// DropOrigin drops the origin name if it exists. It fails while a session
// has it set up.
func DropOrigin(ctx context.Context, q Querier, name string) error {
	_, err := q.Exec(ctx, `
SELECT pg_replication_origin_drop($1) WHERE EXISTS (SELECT FROM pg_replication_origin WHERE roname = $1)`, name)
	if err != nil {
		return fmt.Errorf("drop replication origin %s: %w", name, err)
	}
	return nil
}
