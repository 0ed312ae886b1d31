package replication

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults for CheckConfig.
const (
	DefaultTable           = "bus.outbox"
	DefaultDeadLetterTable = "bus.dead_letter"
)

// outboxColumns are the columns the relay reads from the stream and the
// backfill, and flips.
func outboxColumns() []string {
	return append(streamedColumns(), "published_to_nats", "published_at")
}

// streamedColumns must be in the publication's column list (PostgreSQL 15+).
func streamedColumns() []string {
	return []string{"id", "event_id", "subject", "payload", "headers", "created_at"}
}

// CheckConfig names what Check verifies.
type CheckConfig struct {
	Slot        string
	Publication string
	// Table is the outbox, schema-qualified. Default DefaultTable.
	Table string
	// DeadLetterTable is where refused events go, schema-qualified. Default
	// DefaultDeadLetterTable.
	DeadLetterTable string
	// Delete also requires DELETE on Table (retention pruning). Zero skips it.
	Delete bool
	// ApplicationName is the name the relay's replication connection gives
	// the server (ApplicationName of its URL); default "cdcrelay".
	ApplicationName string
	// StatusInterval is the longest the relay stays silent towards its
	// walsender (while back-pressured it reads nothing and only sends
	// status): wal_sender_timeout must be at least twice as long. Zero
	// skips the check.
	StatusInterval time.Duration
}

// Settings of CheckConfig a CheckError can name.
const (
	SettingSlot        = "Slot"
	SettingPublication = "Publication"
)

// CheckError is one failed start-up precondition, as facts a caller can
// turn into advice in its own words. Error() is a single line: the problem,
// then what fixes it.
type CheckError struct {
	// Problem says what is wrong.
	Problem string
	// Fix is what to set or run on the server to fix it; empty when only
	// the remedies below apply.
	Fix string
	// Setting names the CheckConfig field at fault (SettingSlot,
	// SettingPublication) when giving it another value fixes the problem.
	Setting string
	// Unmigrated says the schema the relay needs is missing or incomplete:
	// applying the migrations (package migrations) fixes it.
	Unmigrated bool
}

func (e *CheckError) Error() string {
	var fixes []string
	if e.Unmigrated {
		fixes = append(fixes, "apply cdcrelay's migrations to this database")
	}
	if e.Setting != "" {
		fixes = append(fixes, "choose another "+strings.ToLower(e.Setting))
	}
	if e.Fix != "" {
		fixes = append(fixes, e.Fix)
	}
	return e.Problem + ": " + strings.Join(fixes, ", or ")
}

func problem(fix, format string, args ...any) *CheckError {
	return &CheckError{Problem: fmt.Sprintf(format, args...), Fix: fix}
}

// badSetting is a problem with the value of a CheckConfig field; fix, if
// any, is the alternative to choosing another value.
func badSetting(setting, fix, format string, args ...any) *CheckError {
	return &CheckError{Problem: fmt.Sprintf(format, args...), Fix: fix, Setting: setting}
}

// unmigrated is a problem that applying the migrations fixes; fix, if any,
// is the alternative.
func unmigrated(fix, format string, args ...any) *CheckError {
	return &CheckError{Problem: fmt.Sprintf(format, args...), Fix: fix, Unmigrated: true}
}

// Check verifies the start-up preconditions on an ordinary connection to the
// relay's database, as the relay's role, and returns the first problem as a
// *CheckError (other errors mean the checks could not run). It covers the
// server (wal_level, version, slot and WAL sender capacity), the role
// (REPLICATION, privileges on the tables, pg_logical_emit_message), the slot
// if it exists (logical, pgoutput, this database) and the publication (exists,
// publishes inserts and nothing else, covers exactly the outbox with every
// row and the columns the relay needs), and that synchronous replication
// cannot wait on the relay itself.
func Check(ctx context.Context, q Querier, cfg CheckConfig) error {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if cfg.DeadLetterTable == "" {
		cfg.DeadLetterTable = DefaultDeadLetterTable
	}
	if err := ValidateSlotName(cfg.Slot); err != nil {
		return badSetting(SettingSlot, "", "%s", err)
	}
	if cfg.Publication == "" {
		return badSetting(SettingPublication, "", "no publication named")
	}
	outbox, err := splitTable(cfg.Table)
	if err != nil {
		return err
	}
	deadLetter, err := splitTable(cfg.DeadLetterTable)
	if err != nil {
		return err
	}
	c := checker{q: q, cfg: cfg, outbox: outbox, deadLetter: deadLetter}
	for _, step := range []func(context.Context) error{
		c.server, c.role, c.capacity, c.slot, c.tables, c.privileges, c.publication, c.publishedTables,
		c.syncReplication,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

type table struct{ schema, name string }

func (t table) String() string { return t.schema + "." + t.name }

// quoted is the table as a quoted SQL name, for casts to regclass and for
// the fixes Check suggests.
func (t table) quoted() string { return sqlName(t.schema) + "." + sqlName(t.name) }

// reserved reports key words a plain lower-case name could collide with in
// the statements Check suggests.
func reserved(s string) bool {
	switch s {
	case "all", "check", "column", "default", "group", "order", "primary", "select", "table", "to", "user", "with":
		return true
	}
	return false
}

// sqlName quotes a name for the fixes Check suggests, only where needed so
// they read as an operator would type them.
func sqlName(s string) string {
	plain := s != "" && !reserved(s) && (s[0] < '0' || s[0] > '9')
	for i := 0; plain && i < len(s); i++ {
		b := s[i]
		plain = (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '_'
	}
	if plain {
		return s
	}
	return pgx.Identifier{s}.Sanitize()
}

func splitTable(s string) (table, error) {
	schema, name, ok := strings.Cut(s, ".")
	if !ok || schema == "" || name == "" {
		return table{}, problem("name it as schema.table, e.g. bus.outbox", "table %q is not schema-qualified", s)
	}
	return table{schema: schema, name: name}, nil
}

type checker struct {
	q                  Querier
	cfg                CheckConfig
	outbox, deadLetter table
	user               string
	version            int
}

func (c *checker) query(ctx context.Context, what, sql string, args []any, dest ...any) error {
	if err := c.q.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		return fmt.Errorf("check %s: %w", what, err)
	}
	return nil
}

func (c *checker) ident(s string) string { return sqlName(s) }

func (c *checker) server(ctx context.Context) error {
	var level string
	if err := c.query(ctx, "server", `SELECT current_setting('wal_level'), current_setting('server_version_num')::int, current_user`,
		nil, &level, &c.version, &c.user); err != nil {
		return err
	}
	if level != "logical" {
		return problem("set wal_level = logical in postgresql.conf (rds.logical_replication = 1 on RDS/Aurora) and restart PostgreSQL",
			"wal_level is %s, logical decoding needs logical", level)
	}
	if c.version < 100000 {
		return problem("upgrade to PostgreSQL 10 or later (14 or later for binary transfer and heartbeats)",
			"PostgreSQL %d has no pgoutput", c.version)
	}
	return c.senderTimeout(ctx)
}

// senderTimeout checks that the walsender waits long enough for the relay:
// as the relay's role sees it, since the setting may be set per role.
func (c *checker) senderTimeout(ctx context.Context) error {
	if c.cfg.StatusInterval <= 0 {
		return nil
	}
	var ms int64
	if err := c.query(ctx, "wal_sender_timeout", `SELECT setting::bigint FROM pg_settings WHERE name = 'wal_sender_timeout'`, nil, &ms); err != nil {
		return err
	}
	timeout, least := time.Duration(ms)*time.Millisecond, 2*c.cfg.StatusInterval
	if ms > 0 && timeout < least {
		return problem(fmt.Sprintf("set wal_sender_timeout to %s or more (or 0) for role %s, e.g. ALTER ROLE %s SET wal_sender_timeout = '%ds'", least, c.user, c.ident(c.user), int(least.Seconds())),
			"wal_sender_timeout is %s: a relay that is back-pressured answers its walsender only every %s, so the walsender would end the connection", timeout, c.cfg.StatusInterval)
	}
	return nil
}

func (c *checker) role(ctx context.Context) error {
	var ok bool
	// RDS grants replication through membership in rds_replication.
	if err := c.query(ctx, "role", `
SELECT r.rolsuper OR r.rolreplication
       OR coalesce((SELECT pg_has_role(r.oid, g.oid, 'MEMBER') FROM pg_roles g WHERE g.rolname = 'rds_replication'), false)
FROM pg_roles r WHERE r.rolname = current_user`, nil, &ok); err != nil {
		return err
	}
	if !ok {
		return problem(fmt.Sprintf("as a superuser run ALTER ROLE %s REPLICATION", c.ident(c.user)),
			"role %s may not open replication connections (no REPLICATION attribute)", c.user)
	}
	return nil
}

func (c *checker) capacity(ctx context.Context) error {
	var maxSlots, maxSenders, slotsUsed, sendersUsed int
	var exists bool
	if err := c.query(ctx, "capacity", `
SELECT current_setting('max_replication_slots')::int,
       current_setting('max_wal_senders')::int,
       (SELECT count(*) FROM pg_replication_slots)::int,
       (SELECT count(*) FROM pg_stat_replication r
         WHERE r.pid IS DISTINCT FROM (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1))::int,
       EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
		[]any{c.cfg.Slot}, &maxSlots, &maxSenders, &slotsUsed, &sendersUsed, &exists); err != nil {
		return err
	}
	const restart = "in postgresql.conf and restart PostgreSQL"
	if maxSlots == 0 {
		return problem("set max_replication_slots to at least 1 "+restart, "max_replication_slots is 0")
	}
	if maxSenders == 0 {
		return problem("set max_wal_senders to at least 1 "+restart, "max_wal_senders is 0")
	}
	if !exists && slotsUsed >= maxSlots {
		return problem("raise max_replication_slots "+restart+", or drop an unused slot (see pg_replication_slots)",
			"all %d replication slots are in use and slot %s does not exist yet", maxSlots, c.cfg.Slot)
	}
	if sendersUsed >= maxSenders {
		return problem("raise max_wal_senders "+restart+", or stop an unused replication client (see pg_stat_replication)",
			"all %d WAL senders are in use", maxSenders)
	}
	return nil
}

func (c *checker) slot(ctx context.Context) error {
	s, err := LookupSlot(ctx, c.q, c.cfg.Slot)
	if err != nil {
		return fmt.Errorf("check slot: %w", err)
	}
	if !s.Exists {
		return nil
	}
	var db string
	if err := c.query(ctx, "slot", `SELECT current_database()`, nil, &db); err != nil {
		return err
	}
	drop := fmt.Sprintf("drop it: SELECT pg_drop_replication_slot('%s')", s.Name)
	switch {
	case s.Type != "logical":
		return badSetting(SettingSlot, drop, "slot %s is a %s slot, not a logical one", s.Name, s.Type)
	case s.Plugin != "pgoutput":
		return badSetting(SettingSlot, drop, "slot %s uses output plugin %s, cdcrelay needs pgoutput", s.Name, s.Plugin)
	case s.Database != db:
		return badSetting(SettingSlot, "", "slot %s belongs to database %s, not %s", s.Name, s.Database, db)
	}
	return nil
}

func (c *checker) tables(ctx context.Context) error {
	for _, t := range []table{c.outbox, c.deadLetter} {
		var schemaExists, usage, tableExists bool
		if err := c.query(ctx, "table "+t.String(), `
SELECT n.oid IS NOT NULL,
       coalesce(has_schema_privilege(n.oid, 'USAGE'), false),
       EXISTS (SELECT 1 FROM pg_class r WHERE r.relnamespace = n.oid AND r.relname = $2 AND r.relkind IN ('r', 'p'))
FROM (SELECT $1::text AS nspname) w LEFT JOIN pg_namespace n ON n.nspname = w.nspname`,
			[]any{t.schema, t.name}, &schemaExists, &usage, &tableExists); err != nil {
			return err
		}
		switch {
		case !schemaExists || !tableExists:
			return unmigrated("", "table %s does not exist", t)
		case !usage:
			return problem(fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", c.ident(t.schema), c.ident(c.user)),
				"role %s may not use schema %s", c.user, t.schema)
		}
	}
	var missing []string
	if err := c.query(ctx, "columns of "+c.outbox.String(), `
SELECT coalesce(array_agg(w.col ORDER BY w.ord), '{}')
FROM unnest($2::text[]) WITH ORDINALITY w(col, ord)
WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = $1::text::regclass AND a.attname = w.col AND a.attnum > 0 AND NOT a.attisdropped)`,
		[]any{c.outbox.quoted(), outboxColumns()}, &missing); err != nil {
		return err
	}
	if len(missing) > 0 {
		return unmigrated("", "table %s lacks column(s) %s", c.outbox, strings.Join(missing, ", "))
	}
	return nil
}

func (c *checker) privileges(ctx context.Context) error {
	var sel, upd, del, ins, dlSel, emit bool
	var slots *bool // nil when bus.relay_slot does not exist yet
	if err := c.query(ctx, "privileges", `
SELECT has_table_privilege($1::text::regclass, 'SELECT'),
       has_column_privilege($1::text::regclass, 'published_to_nats', 'UPDATE')
         AND has_column_privilege($1::text::regclass, 'published_at', 'UPDATE'),
       has_table_privilege($1::text::regclass, 'DELETE'),
       has_table_privilege($2::text::regclass, 'INSERT'),
       has_column_privilege($2::text::regclass, 'event_id', 'SELECT')
         AND has_column_privilege($2::text::regclass, 'replayed_at', 'SELECT')
         AND has_column_privilege($2::text::regclass, 'outbox_id', 'UPDATE')
         AND has_column_privilege($2::text::regclass, 'error', 'UPDATE')
         AND has_column_privilege($2::text::regclass, 'dead_lettered_at', 'UPDATE')
         AND has_column_privilege($2::text::regclass, 'replayed_at', 'UPDATE'),
       CASE WHEN to_regclass($3) IS NOT NULL THEN
         has_table_privilege($3, 'SELECT') AND has_table_privilege($3, 'INSERT') AND has_table_privilege($3, 'UPDATE')
       END,
       coalesce((SELECT bool_or(has_function_privilege(p.oid, 'EXECUTE'))
                 FROM pg_proc p WHERE p.proname = 'pg_logical_emit_message'), false)`,
		[]any{c.outbox.quoted(), c.deadLetter.quoted(), c.relaySlot()}, &sel, &upd, &del, &ins, &dlSel, &slots, &emit); err != nil {
		return err
	}
	grant := func(priv string, t table) *CheckError {
		return problem(fmt.Sprintf("GRANT %s ON %s TO %s", priv, t.quoted(), c.ident(c.user)),
			"role %s lacks %s on %s", c.user, priv, t)
	}
	switch {
	case !sel:
		return grant("SELECT", c.outbox)
	case !upd:
		return grant("UPDATE", c.outbox)
	case c.cfg.Delete && !del:
		return grant("DELETE", c.outbox)
	case !ins:
		return grant("INSERT", c.deadLetter)
	case !dlSel:
		// INSERT ... ON CONFLICT (event_id) DO UPDATE ... WHERE replayed_at
		// IS NOT NULL: a replayed event refused again waits again.
		return grant("SELECT (event_id, replayed_at), UPDATE (outbox_id, error, dead_lettered_at, replayed_at)", c.deadLetter)
	case slots == nil:
		return unmigrated("", "table %s does not exist", c.relaySlot())
	case !*slots:
		return problem(fmt.Sprintf("GRANT SELECT, INSERT, UPDATE ON %s TO %s", c.relaySlot(), c.ident(c.user)),
			"role %s lacks SELECT, INSERT or UPDATE on %s", c.user, c.relaySlot())
	case !emit:
		return problem(fmt.Sprintf("GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO %s", c.ident(c.user)),
			"role %s may not call pg_logical_emit_message, which the heartbeat needs", c.user)
	}
	return nil
}

// relaySlot is where the relay records which slots completed their
// backfill: bus.relay_slot, beside the outbox.
func (c *checker) relaySlot() string {
	return table{schema: c.outbox.schema, name: "relay_slot"}.quoted()
}

func (c *checker) publication(ctx context.Context) error {
	var found, ins, upd, del, trunc, all bool
	if err := c.query(ctx, "publication", `
SELECT count(*) > 0, coalesce(bool_or(p.pubinsert), false), coalesce(bool_or(p.pubupdate), false),
       coalesce(bool_or(p.pubdelete), false), coalesce(bool_or((to_jsonb(p)->>'pubtruncate')::boolean), false),
       coalesce(bool_or(p.puballtables), false)
FROM pg_publication p WHERE p.pubname = $1`, []any{c.cfg.Publication}, &found, &ins, &upd, &del, &trunc, &all); err != nil {
		return err
	}
	pub := c.ident(c.cfg.Publication)
	create := fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert')", pub, c.outbox.quoted())
	onlyInsert := fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert')", pub)
	var extra []string
	for _, op := range []struct {
		on   bool
		name string
	}{{upd, "update"}, {del, "delete"}, {trunc, "truncate"}} {
		if op.on {
			extra = append(extra, op.name)
		}
	}
	if !found {
		return unmigrated(create, "publication %s does not exist", c.cfg.Publication)
	}
	var covered bool
	if err := c.query(ctx, "tables of publication", `
SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`,
		[]any{c.cfg.Publication, c.outbox.schema, c.outbox.name}, &covered); err != nil {
		return err
	}
	switch {
	case !covered:
		return problem(fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", pub, c.outbox.quoted()),
			"publication %s does not include %s", c.cfg.Publication, c.outbox)
	case !ins:
		return problem(onlyInsert, "publication %s does not publish inserts", c.cfg.Publication)
	case len(extra) > 0:
		return problem(onlyInsert, "publication %s also publishes %s: every flip of published_to_nats would stream back to the relay",
			c.cfg.Publication, strings.Join(extra, ", "))
	case all:
		return problem(fmt.Sprintf("DROP PUBLICATION %s; %s", pub, create),
			"publication %s is FOR ALL TABLES: every insert in the database would stream to the relay", c.cfg.Publication)
	}
	return nil
}

func (c *checker) publishedTables(ctx context.Context) error {
	var filtered bool
	var cols, others []string
	// rowfilter and attnames exist from PostgreSQL 15; to_jsonb yields NULL before.
	if err := c.query(ctx, "tables of publication", `
SELECT coalesce(bool_or(t.schemaname = $2 AND t.tablename = $3 AND j->>'rowfilter' IS NOT NULL), false),
       coalesce((SELECT array_agg(a) FROM pg_publication_tables t2, to_jsonb(t2) j2,
                        jsonb_array_elements_text(j2->'attnames') a
                 WHERE t2.pubname = $1 AND t2.schemaname = $2 AND t2.tablename = $3), '{}'),
       coalesce(array_agg(t.schemaname || '.' || t.tablename ORDER BY t.schemaname, t.tablename)
                  FILTER (WHERE NOT (t.schemaname = $2 AND t.tablename = $3)), '{}')
FROM pg_publication_tables t, to_jsonb(t) j WHERE t.pubname = $1`,
		[]any{c.cfg.Publication, c.outbox.schema, c.outbox.name}, &filtered, &cols, &others); err != nil {
		return err
	}
	pub := c.ident(c.cfg.Publication)
	setTable := fmt.Sprintf("ALTER PUBLICATION %s SET TABLE %s", pub, c.outbox.quoted())
	if filtered {
		return problem(setTable, "publication %s has a row filter on %s: rows it filters out would never be relayed", c.cfg.Publication, c.outbox)
	}
	if len(cols) > 0 {
		have := make(map[string]bool, len(cols))
		for _, col := range cols {
			have[col] = true
		}
		var missing []string
		for _, col := range streamedColumns() {
			if !have[col] {
				missing = append(missing, col)
			}
		}
		if len(missing) > 0 {
			return problem(setTable, "publication %s leaves column(s) %s of %s out of its column list",
				c.cfg.Publication, strings.Join(missing, ", "), c.outbox)
		}
	}
	if len(others) > 0 {
		return problem(setTable, "publication %s also publishes %s: their inserts would stream to the relay",
			c.cfg.Publication, strings.Join(others, ", "))
	}
	return nil
}
