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
		&cli.StringFlag{Name: "subjects", EnvVars: []string{"CDCRELAY_SUBJECTS"}, Usage: "comma-separated subjects the stream must capture, e.g. 'orders.>,users.>'; an existing stream keeps its others"},
		&cli.DurationFlag{Name: "max-age", EnvVars: []string{"CDCRELAY_MAX_AGE"}, Value: publish.DefaultMaxAge, Usage: "how long the stream keeps events (an existing stream keeps its own unless this is given)"},
		&cli.StringFlag{Name: "max-bytes", EnvVars: []string{"CDCRELAY_MAX_BYTES"}, Value: "768MiB", Usage: "the stream's size cap, the oldest events going first (an existing stream keeps its own unless this is given)"},
		&cli.DurationFlag{Name: "duplicate-window", EnvVars: []string{"CDCRELAY_DUPLICATE_WINDOW"}, Value: publish.DefaultDuplicateWindow, Usage: "inside it a resent event is dropped as a duplicate; cover a relay restart (an existing stream keeps its own unless this is given)"},
		&cli.IntFlag{Name: "replicas", EnvVars: []string{"CDCRELAY_REPLICAS"}, Value: 1, Usage: "stream replicas, 3 in a cluster for durability across machine loss (an existing stream keeps its own unless this is given)"},
	}
}

// streamConfigFrom reads the stream flags. A limit not given stays zero, so
// that an existing stream keeps its own (a new one gets the default).
func streamConfigFrom(c *cli.Context) (*publish.StreamConfig, error) {
	sc := &publish.StreamConfig{Name: c.String("stream"), AllowAtomic: c.Bool("atomic-transactions")}
	for _, s := range strings.Split(c.String("subjects"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			sc.Subjects = append(sc.Subjects, s)
		}
	}
	if c.IsSet("max-bytes") {
		n, err := parseBytes(c.String("max-bytes"))
		if err != nil {
			return nil, fmt.Errorf("--max-bytes: %w", err)
		}
		sc.MaxBytes = n
	}
	if c.IsSet("max-age") {
		sc.MaxAge = c.Duration("max-age")
	}
	if c.IsSet("duplicate-window") {
		sc.DuplicateWindow = c.Duration("duplicate-window")
	}
	if c.IsSet("replicas") {
		sc.Replicas = c.Int("replicas")
	}
	return sc, nil
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
				done, err := publish.EnsureStream(c.Context, js, *sc)
				if err != nil {
					return err
				}
				what := "unchanged"
				switch {
				case done.Created:
					what = "created"
				case len(done.Changes) > 0:
					what = "updated (" + strings.Join(done.Changes, "; ") + ")"
				}
				cfg := done.Config
				allowed := "batched publishing allowed"
				if cfg.AllowAtomicPublish {
					allowed = "batched and atomic publishing allowed"
				}
				fmt.Fprintf(c.App.Writer, "stream %s %s: subjects %s, max age %v, max bytes %d, duplicate window %v, replicas %d, %s\n",
					sc.Name, what, strings.Join(cfg.Subjects, ","), cfg.MaxAge, cfg.MaxBytes, cfg.Duplicates, max(cfg.Replicas, 1), allowed)
				return nil
			},
		})},
	}
}

func natsURLFlag() cli.Flag {
	return &cli.StringFlag{Name: "nats-url", EnvVars: []string{"CDCRELAY_NATS_URL", "NATS_URL"}, Value: nats.DefaultURL, Usage: "NATS server URL(s), comma-separated"}
}
