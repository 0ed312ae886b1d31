package main

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/relay"
)

// streamFlags are the stream limits shared by `stream ensure` and `run --ensure-stream`.
func streamFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "subjects", EnvVars: []string{"CDCRELAY_SUBJECTS"}, Usage: "comma-separated subjects the stream captures, e.g. 'orders.>,users.>'"},
		&cli.DurationFlag{Name: "max-age", EnvVars: []string{"CDCRELAY_MAX_AGE"}, Value: publish.DefaultMaxAge, Usage: "how long the stream keeps events"},
		&cli.StringFlag{Name: "max-bytes", EnvVars: []string{"CDCRELAY_MAX_BYTES"}, Value: "768MiB", Usage: "the stream's size cap; the oldest events go first"},
		&cli.DurationFlag{Name: "duplicate-window", EnvVars: []string{"CDCRELAY_DUPLICATE_WINDOW"}, Value: publish.DefaultDuplicateWindow, Usage: "inside it a resent event is dropped as a duplicate; cover a relay restart"},
		&cli.IntFlag{Name: "replicas", EnvVars: []string{"CDCRELAY_REPLICAS"}, Value: 1, Usage: "stream replicas (3 in a cluster for durability across machine loss)"},
	}
}

func streamConfigFrom(c *cli.Context) (*publish.StreamConfig, error) {
	maxBytes, err := parseBytes(c.String("max-bytes"))
	if err != nil {
		return nil, fmt.Errorf("--max-bytes: %w", err)
	}
	var subjects []string
	for _, s := range strings.Split(c.String("subjects"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			subjects = append(subjects, s)
		}
	}
	return &publish.StreamConfig{
		Name:            c.String("stream"),
		Subjects:        subjects,
		MaxAge:          c.Duration("max-age"),
		MaxBytes:        maxBytes,
		DuplicateWindow: c.Duration("duplicate-window"),
		Replicas:        c.Int("replicas"),
		AllowAtomic:     c.Bool("atomic-transactions"),
	}, nil
}

func streamCommand() *cli.Command {
	return &cli.Command{
		Name:  "stream",
		Usage: "manage the JetStream stream the relay publishes to",
		Subcommands: []*cli.Command{withConfig(&cli.Command{
			Name:  "ensure",
			Usage: "create the stream, or update its subjects and limits (file storage, discard old, batched publishing allowed)",
			Flags: append([]cli.Flag{
				natsURLFlag(),
				&cli.StringFlag{Name: "stream", EnvVars: []string{"CDCRELAY_STREAM"}, Value: relay.DefaultStream, Usage: "stream name"},
				&cli.BoolFlag{Name: "atomic-transactions", EnvVars: []string{"CDCRELAY_ATOMIC_TRANSACTIONS"}, Usage: "also allow atomic batch publishing (allow_atomic), which `run --atomic-transactions` needs"},
			}, append(streamFlags(), natsSecurityFlags()...)...),
			Action: func(c *cli.Context) error {
				sc, err := streamConfigFrom(c)
				if err != nil {
					return err
				}
				if len(sc.Subjects) == 0 {
					return fmt.Errorf("--subjects is required, e.g. --subjects 'orders.>,users.>'")
				}
				nc, js, err := connectJetStream(c, "cdcrelay stream ensure")
				if err != nil {
					return err
				}
				defer nc.Close()
				if err := publish.CheckServer(nc); err != nil {
					return advise(err)
				}
				created, err := publish.EnsureStream(c.Context, js, *sc)
				if err != nil {
					return err
				}
				verb := "updated"
				if created {
					verb = "created"
				}
				allowed := "batched publishing allowed"
				if sc.AllowAtomic {
					allowed = "batched and atomic publishing allowed"
				}
				fmt.Fprintf(c.App.Writer, "stream %s %s: subjects %s, max age %v, max bytes %d, duplicate window %v, replicas %d, %s\n",
					sc.Name, verb, strings.Join(sc.Subjects, ","), orDefault(sc.MaxAge, publish.DefaultMaxAge), sc.MaxBytes,
					orDefault(sc.DuplicateWindow, publish.DefaultDuplicateWindow), max(sc.Replicas, 1), allowed)
				return nil
			},
		})},
	}
}

func natsURLFlag() cli.Flag {
	return &cli.StringFlag{Name: "nats-url", EnvVars: []string{"CDCRELAY_NATS_URL", "NATS_URL"}, Value: nats.DefaultURL, Usage: "NATS server URL(s), comma-separated"}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
