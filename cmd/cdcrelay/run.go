package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/internal/natsserver"
	"github.com/cdcrelay/cdcrelay/internal/sched"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/relay"
)

func runCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "database-url", EnvVars: []string{"CDCRELAY_DATABASE_URL", "DATABASE_URL"}, Usage: "PostgreSQL URL (the relay adds replication=database for its slot connection)"},
		&cli.StringFlag{Name: "nats-url", EnvVars: []string{"CDCRELAY_NATS_URL", "NATS_URL"}, Usage: "NATS server URL(s), comma-separated"},
		&cli.BoolFlag{Name: "embedded-nats", EnvVars: []string{"CDCRELAY_EMBEDDED_NATS"}, Usage: "run an in-process JetStream server (single-box deployments; needs no --nats-url)"},
		&cli.StringFlag{Name: "embedded-nats-dir", EnvVars: []string{"CDCRELAY_EMBEDDED_NATS_DIR"}, Value: "cdcrelay-jetstream", Usage: "store directory of the embedded server"},
		&cli.StringFlag{Name: "stream", EnvVars: []string{"CDCRELAY_STREAM"}, Value: relay.DefaultStream, Usage: "JetStream stream the relay publishes to (it must allow batched publishing)"},
		&cli.StringFlag{Name: "slot", EnvVars: []string{"CDCRELAY_SLOT"}, Value: relay.DefaultSlot, Usage: "logical replication slot"},
		&cli.StringFlag{Name: "publication", EnvVars: []string{"CDCRELAY_PUBLICATION"}, Value: relay.DefaultPublication, Usage: "publication of bus.outbox"},
		&cli.IntFlag{Name: "max-in-flight", EnvVars: []string{"CDCRELAY_MAX_IN_FLIGHT"}, Value: publish.DefaultMaxInFlight, Usage: "events between the slot and the flip"},
		&cli.StringFlag{Name: "max-in-flight-bytes", EnvVars: []string{"CDCRELAY_MAX_IN_FLIGHT_BYTES"}, Value: "64MiB", Usage: "bytes between the slot and the flip"},
		&cli.DurationFlag{Name: "ack-timeout", EnvVars: []string{"CDCRELAY_ACK_TIMEOUT"}, Value: publish.DefaultAckTimeout, Usage: "how long a batch may go without word from JetStream before the relay sends its unacked events again"},
		&cli.BoolFlag{Name: "atomic-transactions", EnvVars: []string{"CDCRELAY_ATOMIC_TRANSACTIONS"}, Usage: "publish each outbox transaction as one JetStream atomic batch, all of its events or none (the stream needs allow_atomic; larger transactions go the ordinary way, see --atomic-max-batch)"},
		&cli.IntFlag{Name: "atomic-max-batch", EnvVars: []string{"CDCRELAY_ATOMIC_MAX_BATCH"}, Value: publish.DefaultAtomicMaxBatch, Usage: "most events in one atomic batch: nats-server's jetstream { limits { batch { max_msgs } } } (1000 by default)"},
		&cli.BoolFlag{Name: "diagnostic-headers", EnvVars: []string{"CDCRELAY_DIAGNOSTIC_HEADERS"}, Usage: "add Cdcrelay-Outbox-Id, Cdcrelay-Commit-Lsn and the times of each event's stages (commit, walsender send, receipt, publish) to every message (every consumer parses them)"},
		&cli.Int64Flag{Name: "lock-id", EnvVars: []string{"CDCRELAY_LOCK_ID"}, Value: election.DefaultLockID, Usage: "advisory lock key of the leader; set it to your old poller's key so the two never run at once"},
		&cli.DurationFlag{Name: "election-interval", EnvVars: []string{"CDCRELAY_ELECTION_INTERVAL"}, Value: election.DefaultInterval, Usage: "how long a standby waits on the lock before it waits again, and how often a leader checks its lock"},
		&cli.DurationFlag{Name: "shutdown-timeout", EnvVars: []string{"CDCRELAY_SHUTDOWN_TIMEOUT"}, Value: relay.DefaultShutdownTimeout, Usage: "how long SIGTERM waits for in-flight acks"},
		&cli.DurationFlag{Name: "receive-timeout", EnvVars: []string{"CDCRELAY_RECEIVE_TIMEOUT"}, Value: relay.DefaultReceiveTimeout, Usage: "how long the walsender may stay silent (a keepalive is requested at half of it) before the leader reconnects, as wal_receiver_timeout does for PostgreSQL's own subscribers; at least the walsender's wal_sender_timeout plus two status intervals, since it answers only that often while replaying a large transaction; negative: no limit"},
		&cli.DurationFlag{Name: "slot-create-timeout", EnvVars: []string{"CDCRELAY_SLOT_CREATE_TIMEOUT"}, Value: relay.DefaultSlotCreateTimeout, Usage: "how long creating the slot may wait for transactions open when it began, before it is retried"},
		&cli.BoolFlag{Name: "origin-filter", EnvVars: []string{"CDCRELAY_ORIGIN_FILTER"}, Value: true, Usage: "on PostgreSQL 16+, flip under a replication origin and stream with pgoutput's origin 'none', so the walsender skips the flips instead of decoding them (needs cdcrelay migrate's guard on bus.outbox, which then refuses inserts made under a replication origin, and EXECUTE on pg_replication_origin_create and pg_replication_origin_session_setup; without them the relay streams unfiltered and logs why)"},
		&cli.StringFlag{Name: "cpu-policy", EnvVars: []string{"CDCRELAY_CPU_POLICY"}, Value: cpuPolicyBatch, Usage: "batch: a woken relay thread never preempts the one running on its core, such as PostgreSQL's walsender on a shared host (Linux SCHED_BATCH, same CPU share); normal: the kernel's default"},
		&cli.IntFlag{Name: "procs", EnvVars: []string{"CDCRELAY_PROCS"}, Value: 1, Usage: "threads running Go code at once (GOMAXPROCS): 1 by default, since the relay mostly waits on sockets and on one thread its hand-offs between goroutines wake no other thread; 0 leaves Go's choice (the cores or the container's CPU limit, or $GOMAXPROCS), which is also the default beside --embedded-nats or a $GOMAXPROCS you set"},
		&cli.BoolFlag{Name: "ensure-stream", EnvVars: []string{"CDCRELAY_ENSURE_STREAM"}, Usage: "create the stream at start-up, or add to it the subjects and options the relay needs, taking nothing away (needs --subjects)"},
	}
	return withConfig(&cli.Command{
		Name:  "run",
		Usage: "stream bus.outbox into JetStream: the leader relays, other replicas stand by",
		Flags: append(append(flags, streamFlags()...), operateFlags()...),
		Action: func(c *cli.Context) error {
			log, err := newLogger(c)
			if err != nil {
				return err
			}
			cfg, err := runConfig(c)
			if err != nil {
				return err
			}
			if err := operateConfig(c, &cfg); err != nil {
				return err
			}
			procs, err := maxProcs(c.Int("procs"), c.IsSet("procs"), os.Getenv("GOMAXPROCS"), c.Bool("embedded-nats"))
			if err != nil {
				return err
			}
			if procs > 0 {
				runtime.GOMAXPROCS(procs)
			}
			if err := applyCPUPolicy(c.String("cpu-policy"), log); err != nil {
				return err
			}
			if c.Bool("embedded-nats") {
				if cfg.NATSURL != "" {
					return fmt.Errorf("--embedded-nats and --nats-url both set: choose one")
				}
				dir, err := filepath.Abs(c.String("embedded-nats-dir"))
				if err != nil {
					return err
				}
				if err := os.MkdirAll(dir, 0o750); err != nil {
					return fmt.Errorf("--embedded-nats-dir: %w", err)
				}
				srv, err := natsserver.Start(natsserver.Options{StoreDir: dir})
				if err != nil {
					return fmt.Errorf("embedded NATS: %w", err)
				}
				defer srv.Stop()
				cfg.NATSURL = srv.URL()
				log.Info().Str("url", srv.URL()).Str("store", dir).Msg("embedded JetStream server running")
			}
			return runRelay(c.Context, log, cfg, operationFrom(c))
		},
	})
}

func runConfig(c *cli.Context) (relay.Config, error) {
	inflightBytes, err := parseBytes(c.String("max-in-flight-bytes"))
	if err != nil {
		return relay.Config{}, fmt.Errorf("--max-in-flight-bytes: %w", err)
	}
	cfg := relay.Config{
		DatabaseURL: c.String("database-url"),
		NATSURL:     c.String("nats-url"),
		Slot:        c.String("slot"),
		Publication: c.String("publication"),
		Publish: publish.Config{
			Stream:             c.String("stream"),
			MaxInFlight:        c.Int("max-in-flight"),
			MaxInFlightBytes:   inflightBytes,
			AckTimeout:         c.Duration("ack-timeout"),
			DiagnosticHeaders:  c.Bool("diagnostic-headers"),
			AtomicTransactions: c.Bool("atomic-transactions"),
			AtomicMaxBatch:     c.Int("atomic-max-batch"),
		},
		Election: election.Config{
			LockID:   c.Int64("lock-id"),
			Interval: c.Duration("election-interval"),
		},
		ShutdownTimeout:   c.Duration("shutdown-timeout"),
		SlotCreateTimeout: c.Duration("slot-create-timeout"),
		ReceiveTimeout:    c.Duration("receive-timeout"),
		Unfiltered:        !c.Bool("origin-filter"),
	}
	if c.Bool("ensure-stream") {
		sc, err := streamConfigFrom(c)
		if err != nil {
			return cfg, err
		}
		if len(sc.Subjects) == 0 {
			return cfg, fmt.Errorf("--ensure-stream needs --subjects, e.g. --subjects 'orders.>,users.>'")
		}
		cfg.EnsureStream = sc
	}
	return cfg, nil
}

// maxProcs is the GOMAXPROCS that --procs asks for, or 0 to leave Go's
// choice. One is the default because the relay's work is a chain of
// goroutines handing each event on (slot reader, sender, NATS flusher, ack
// handler, flip): with more than one P every hand-off wakes an idle thread
// to run it, which at low rates costs more CPU than the event itself
// (bench: about a fifth of the relay's CPU at 1 k events/s; the drain
// rate does not drop, as the relay spends a few µs of CPU per event).
// An operator's $GOMAXPROCS stands unless the flag is given too, and so
// does Go's choice beside an embedded NATS server, whose storing is real
// work that one thread would serialise with the relay's.
func maxProcs(flag int, flagSet bool, env string, embeddedNATS bool) (int, error) {
	switch {
	case flag < 0:
		return 0, fmt.Errorf("--procs %d: want a thread count, or 0 for Go's default", flag)
	case flagSet:
		return flag, nil
	case env != "" || embeddedNATS:
		return 0, nil
	}
	return flag, nil
}

const (
	cpuPolicyBatch  = "batch"
	cpuPolicyNormal = "normal"
)

// applyCPUPolicy puts the process under the --cpu-policy. Batch is the
// default because the relay is woken by every message of its walsender: on
// cores shared with PostgreSQL, waking under the default policy preempts
// that walsender and delays the next events (see package sched). A kernel
// or sandbox that refuses it costs latency, not correctness: a warning.
func applyCPUPolicy(policy string, log zerolog.Logger) error {
	switch policy {
	case cpuPolicyNormal:
		return nil
	case cpuPolicyBatch:
		if n, err := sched.Batch(); err != nil {
			log.Warn().Err(err).Int("threads_switched", n).Msg("not every thread runs under SCHED_BATCH, so the relay's wake-ups may preempt a walsender on shared cores; --cpu-policy normal silences this warning")
		}
		return nil
	default:
		return fmt.Errorf("--cpu-policy %q: want %s or %s", policy, cpuPolicyBatch, cpuPolicyNormal)
	}
}
