package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/cdcrelay/cdcrelay/deadletter"
	"github.com/cdcrelay/cdcrelay/relay"
)

func deadletterCommand() *cli.Command {
	dbFlag := &cli.StringFlag{Name: "database-url", EnvVars: []string{"CDCRELAY_DATABASE_URL", "DATABASE_URL"}, Usage: "PostgreSQL URL or DSN"}
	return &cli.Command{
		Name:  "deadletter",
		Usage: "list and replay the events JetStream refused for good (bus.dead_letter)",
		Subcommands: []*cli.Command{
			withConfig(&cli.Command{
				Name:  "list",
				Usage: "list dead letters, oldest first",
				Flags: []cli.Flag{
					dbFlag,
					&cli.BoolFlag{Name: "all", Usage: "include the ones already replayed"},
					&cli.IntFlag{Name: "limit", Value: 100, Usage: "list at most this many"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON (with payloads, base64), for scripts"},
				},
				Action: deadletterList,
			}),
			withConfig(&cli.Command{
				Name:  "replay",
				Usage: "publish dead letters again, in order behind the events being relayed",
				Description: `Each event goes back into bus.outbox, with its event id (so JetStream's
Nats-Msg-Id is the same), subject, payload and headers, in one transaction
that also sets replayed_at; the relay then publishes it like any new event,
in commit order. A dead letter is replayed once: run again, it is skipped.
Fix the cause first (add the subject to the stream, raise the size limit):
replay checks that the stream captures the subject, then waits (--wait)
until the relay published the event and confirms it is in the stream.`,
				Flags: append([]cli.Flag{
					dbFlag,
					natsURLFlag(),
					&cli.StringFlag{Name: "stream", EnvVars: []string{"CDCRELAY_STREAM"}, Value: relay.DefaultStream, Usage: "JetStream stream the relay owns"},
					&cli.StringSliceFlag{Name: "id", Usage: "event id to replay (repeat the flag for several)"},
					&cli.BoolFlag{Name: "all", Usage: "replay every dead letter not yet replayed"},
					&cli.DurationFlag{Name: "wait", Value: 30 * time.Second, Usage: "wait this long for each event to reach the stream (0: do not wait)"},
				}, natsSecurityFlags()...),
				Action: deadletterReplay,
			}),
		},
	}
}

// connectDB connects for a one-off command, naming it in pg_stat_activity.
func connectDB(c *cli.Context, name string) (*pgx.Conn, error) {
	url := c.String("database-url")
	if url == "" {
		return nil, errDatabaseURL
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("--database-url: %w", err) // pgx masks the password
	}
	cfg.RuntimeParams["application_name"] = name
	conn, err := pgx.ConnectConfig(c.Context, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return conn, nil
}

func deadletterList(c *cli.Context) error {
	conn, err := connectDB(c, "cdcrelay deadletter")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(c.Context))
	list, err := deadletter.List(c.Context, conn, c.Bool("all"), c.Int("limit"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if list == nil {
			list = []deadletter.Row{}
		}
		return enc.Encode(list)
	}
	if len(list) == 0 {
		what := "no dead letters waiting for a replay"
		if c.Bool("all") {
			what = "no dead letters"
		}
		_, err := fmt.Fprintln(c.App.Writer, what)
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT ID\tSUBJECT\tSIZE\tDEAD-LETTERED\tREPLAYED\tERROR")
	for _, d := range list {
		replayed := "-"
		if d.ReplayedAt != nil {
			replayed = d.ReplayedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.EventID, d.Subject, humanBytes(int64(len(d.Payload))),
			d.DeadLetteredAt.UTC().Format(time.RFC3339), replayed, oneLine(d.Error, 100))
	}
	return tw.Flush()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}
