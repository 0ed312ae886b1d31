// Package migrations creates and upgrades cdcrelay's schema in a database:
// the numbered SQL files in this directory, each applied once, in order, in
// its own transaction, and recorded in bus.schema_migrations; then the
// repeatable SQL API of package sql, on every run. It works on an empty
// database and on one that already has the poller's bus.outbox table.
//
// It is a small runner of our own rather than tern's migrate package: we want
// the version table in schema bus, control over the poller-era upgrade path,
// and none of tern's template dependencies.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/sql"
)

//go:embed *.sql
var versioned embed.FS

// Migration names one versioned migration, e.g. 1 "outbox" for 0001_outbox.sql.
type Migration struct {
	Version int
	Name    string
}

func (m Migration) String() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

// Result says what one Apply did.
type Result struct {
	// Applied are the versioned migrations this run applied, in order;
	// empty when the schema was already current.
	Applied []Migration
	// Version is the highest migration version now recorded.
	Version int
	// Warnings are what Inspect found after the run.
	Warnings []string
}

// Option configures Apply.
type Option func(*options)

type options struct {
	progress func(string)
	// upTo stops Apply after this version, as an older cdcrelay would
	// (the upgrade tests); 0 applies them all.
	upTo int
}

// WithProgress has Apply report each step as one line of text (waiting for
// the lock, each migration applied, each warning), e.g. for a CLI to print.
func WithProgress(fn func(line string)) Option {
	return func(o *options) {
		if fn != nil {
			o.progress = fn
		}
	}
}

type migration struct {
	Migration
	sql string
}

var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Apply brings the database conn is connected to up to date: it applies the
// versioned migrations it has not recorded yet, then runs the repeatable SQL
// API, then inspects the outbox (see Inspect). It holds the migration lock
// (see LockKey1) throughout, so concurrent runs wait for each other. conn must
// not be inside a transaction. Running it again applies no migration and
// leaves the schema as it was.
func Apply(ctx context.Context, conn *pgx.Conn, opts ...Option) (res Result, err error) {
	o := options{progress: func(string) {}}
	for _, opt := range opts {
		opt(&o)
	}
	all, err := load()
	if err != nil {
		return Result{}, err
	}
	unlock, err := lock(ctx, conn, o.progress)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if uerr := unlock(); uerr != nil && err == nil {
			err = uerr
		}
	}()

	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return Result{}, err
	}
	for v := range applied {
		if !slices.ContainsFunc(all, func(m migration) bool { return m.Version == v }) {
			return Result{}, fmt.Errorf("the database has migration %04d, which this cdcrelay does not know: a newer cdcrelay migrated it, so run that one", v)
		}
	}
	if o.upTo > 0 {
		all = slices.DeleteFunc(all, func(m migration) bool { return m.Version > o.upTo })
	}
	for _, m := range all {
		if applied[m.Version] {
			continue
		}
		if err := applyOne(ctx, conn, m); err != nil {
			return res, err
		}
		res.Applied = append(res.Applied, m.Migration)
		o.progress("applied " + m.String())
	}
	res.Version = all[len(all)-1].Version

	n, err := applyRepeatable(ctx, conn)
	if err != nil {
		return res, err
	}
	o.progress(fmt.Sprintf("schema at version %d; SQL API re-applied (%d files)", res.Version, n))

	res.Warnings, err = Inspect(ctx, conn)
	if err != nil {
		return res, err
	}
	for _, w := range res.Warnings {
		o.progress("warning: " + w)
	}
	return res, nil
}

// load reads the embedded migrations, sorted by version.
func load() ([]migration, error) {
	entries, err := fs.ReadDir(versioned, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var all []migration
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s: name is not NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if len(all) > 0 && all[len(all)-1].Version == v {
			return nil, fmt.Errorf("migration version %04d appears twice", v)
		}
		body, err := fs.ReadFile(versioned, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		all = append(all, migration{Migration{Version: v, Name: m[2]}, string(body)})
	}
	if len(all) == 0 {
		return nil, errors.New("no migrations embedded")
	}
	return all, nil // ReadDir sorts by name, and names start with the zero-padded version
}

// appliedVersions creates the version table if needed and reads it.
func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int]bool, error) {
	// client_min_messages: no "already exists, skipping" notice on every run.
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			SET LOCAL client_min_messages = warning;
			CREATE SCHEMA IF NOT EXISTS bus;
			CREATE TABLE IF NOT EXISTS bus.schema_migrations (
				version    integer PRIMARY KEY,
				name       text NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create bus.schema_migrations: %w", err)
	}
	rows, _ := conn.Query(ctx, `SELECT version FROM bus.schema_migrations`)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("read bus.schema_migrations: %w", err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[int(v)] = true
	}
	return applied, nil
}

func applyOne(ctx context.Context, conn *pgx.Conn, m migration) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// No arguments: pgx sends it with the simple protocol, which runs a
		// file of several statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO bus.schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("apply migration %s: %w", m, withHint(err, m.sql))
	}
	return nil
}

// applyRepeatable runs every file of package sql, in one transaction.
func applyRepeatable(ctx context.Context, conn *pgx.Conn) (int, error) {
	entries, err := fs.ReadDir(sql.Files, ".")
	if err != nil {
		return 0, fmt.Errorf("read sql/: %w", err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, e := range entries {
			body, err := fs.ReadFile(sql.Files, e.Name())
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("sql/%s: %w", e.Name(), withHint(err, string(body)))
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("apply SQL API: %w", err)
	}
	return len(entries), nil
}

// withHint adds to the error's one-line text the server's DETAIL and HINT,
// which say what to do, and for a syntax error its line in the file's text.
func withHint(err error, text string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	if pos := int(pgErr.Position); pos > 0 && pos <= len(text) {
		err = fmt.Errorf("%w; at line %d", err, 1+strings.Count(text[:pos-1], "\n"))
	}
	if pgErr.Detail != "" {
		err = fmt.Errorf("%w; detail: %s", err, pgErr.Detail)
	}
	if pgErr.Hint != "" {
		err = fmt.Errorf("%w; hint: %s", err, pgErr.Hint)
	}
	return err
}
