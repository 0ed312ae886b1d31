package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/urfave/cli/v2"

	"github.com/cdcrelay/cdcrelay/migrations"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "create or upgrade the bus schema and its SQL API (safe to run again)",
		Description: `Applies the versioned migrations the database lacks, each once, then the
repeatable SQL API (bus.publish, bus.uuidv7), under an advisory lock so that
concurrent runs wait for each other. Works on an empty database and on one
whose bus.outbox was written by the LISTEN/poll relay: rows are kept, columns
added; what cannot be converted safely is refused with a hint.`,
		Flags:  []cli.Flag{databaseURLFlag()},
		Action: migrate,
	}
}

// databaseURLFlag is --database-url, for every command that connects to
// PostgreSQL.
func databaseURLFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:     "database-url",
		EnvVars:  []string{"CDCRELAY_DATABASE_URL", "DATABASE_URL"},
		Usage:    "PostgreSQL URL or DSN, e.g. postgres://user@host:5432/db",
		Required: true,
	}
}

func migrate(c *cli.Context) error {
	out := c.App.Writer
	if c.String("database-url") == "" { // set, but to an empty string
		return errors.New("--database-url is empty")
	}
	cfg, err := pgx.ParseConfig(c.String("database-url"))
	if err != nil {
		return fmt.Errorf("--database-url: %w", err) // pgx masks the password
	}
	cfg.RuntimeParams["application_name"] = "cdcrelay migrate"
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { fmt.Fprintf(out, "notice: %s\n", n.Message) }

	// Named from the parsed settings, so no password can be printed.
	fmt.Fprintf(out, "migrating database %s on %s:%d as %s\n", cfg.Database, cfg.Host, cfg.Port, cfg.User)
	conn, err := pgx.ConnectConfig(c.Context, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(c.Context))

	res, err := migrations.Apply(c.Context, conn, migrations.WithProgress(func(line string) { fmt.Fprintln(out, line) }))
	if err != nil {
		return err
	}
	if len(res.Applied) == 0 {
		fmt.Fprintln(out, "nothing to apply: the schema was up to date")
	}
	return nil
}
