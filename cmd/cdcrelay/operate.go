package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/health"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/replication"
	"github.com/cdcrelay/cdcrelay/retention"
)

// operateFlags are what `run` offers operators: the health and metrics
// listener, retention, and NATS security.
func operateFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "metrics-addr", EnvVars: []string{"CDCRELAY_METRICS_ADDR"}, Value: health.DefaultAddr, Usage: "host:port of /healthz, /readyz and /metrics (empty: no listener)"},
		&cli.BoolFlag{Name: "pprof", EnvVars: []string{"CDCRELAY_PPROF"}, Usage: "serve /debug/pprof/ on --metrics-addr"},
		&cli.DurationFlag{Name: "retention", EnvVars: []string{"CDCRELAY_RETENTION"}, Value: retention.DefaultRetention, Usage: "the leader deletes published outbox rows older than this (0: keep everything)"},
	}, natsSecurityFlags()...)
}

// operateConfig applies the operator flags to cfg, refusing combinations
// that cannot work with one line naming the flag.
func operateConfig(c *cli.Context, cfg *relay.Config) error {
	if cfg.DatabaseURL == "" {
		return errDatabaseURL
	}
	if c.Duration("retention") < 0 {
		return fmt.Errorf("--retention %v: must be 0 (keep everything) or positive", c.Duration("retention"))
	}
	if c.Bool("pprof") && c.String("metrics-addr") == "" {
		return fmt.Errorf("--pprof needs --metrics-addr to serve on")
	}
	if used := natsSecurityUsed(c); c.Bool("embedded-nats") && len(used) > 0 {
		return fmt.Errorf("%s set with --embedded-nats, whose server has no authentication or TLS: drop it, or use --nats-url", used[0])
	}
	opts, err := natsSecurityOptions(c)
	if err != nil {
		return err
	}
	cfg.NATSOptions = append(cfg.NATSOptions, opts...)
	return nil
}

// operation is how runRelay serves operators.
type operation struct {
	metricsAddr string // empty: no listener
	// metricsDefault says metricsAddr is the default, not chosen: if that
	// port is taken the relay runs without a listener (and warns).
	metricsDefault bool
	pprof          bool
	retention      time.Duration // 0: keep everything
	secrets        []string      // scrubbed from errors
	// started, if set, hears of the relay and the listener's address
	// (empty without one) before the relay runs.
	started func(r *relay.Relay, addr string)
}

func operationFrom(c *cli.Context) operation {
	return operation{
		metricsAddr:    c.String("metrics-addr"),
		metricsDefault: !c.IsSet("metrics-addr"),
		pprof:          c.Bool("pprof"),
		retention:      c.Duration("retention"),
		secrets:        natsSecrets(c),
	}
}

// runRelay runs the relay with its metrics, health endpoints, backlog
// measurement and retention, until ctx ends or the relay fails. Its error
// names the fix, without secrets.
func runRelay(ctx context.Context, log zerolog.Logger, cfg relay.Config, op operation) (err error) {
	defer func() { err = redactError(advise(err), op.secrets...) }()
	reg := metrics.NewRegistry(version)
	ack, err := metrics.NewAckLatency(reg)
	if err != nil {
		return err
	}
	cfg.Publish.OnAck = ack.Observe

	// A pool of its own, so scrapes and the backlog count never wait for
	// (or hold up) the relay's connections.
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// Worded as the relay words it; pgx masks the password.
		return &relay.ConfigError{Setting: relay.SettingDatabaseURL, Problem: relay.SettingInvalid, Err: err}
	}
	pcfg.MaxConns = 2
	pcfg.ConnConfig.RuntimeParams["application_name"] = "cdcrelay metrics"
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return &relay.ConfigError{Setting: relay.SettingDatabaseURL, Problem: relay.SettingInvalid, Err: err}
	}
	defer pool.Close()

	backlog := metrics.NewBacklog(pool, metrics.BacklogConfig{}, log)
	cfg.WhileLeading = append(cfg.WhileLeading, func(ctx context.Context, _ election.Runner) error { return backlog.Run(ctx) })
	var prune metrics.PruneStats
	if keep := op.retention; keep > 0 {
		if err := checkRetention(ctx, pool, cfg); err != nil {
			return err
		}
		p, err := retention.New(retention.Config{Retention: keep}, log)
		if err != nil {
			return fmt.Errorf("--retention: %w", err)
		}
		cfg.WhileLeading = append(cfg.WhileLeading, p.Run)
		prune = p
	}

	r, err := relay.New(cfg, log)
	if err != nil {
		return err
	}
	failover := metrics.NewFailoverWatch(pool, metrics.FailoverConfig{URL: cfg.DatabaseURL, Slot: cfg.Slot}, log)
	if err := metrics.Register(reg, metrics.Config{Relay: r, Pool: pool, Slot: cfg.Slot, Backlog: backlog, Prune: prune, Failover: failover}); err != nil {
		return err
	}
	// Failover readiness is detail, not readiness: a relay that streams
	// does its job whether or not the slot would survive a failover.
	ready := func() (bool, string) {
		ok, why := r.Ready()
		return ok, why + "; " + failover.Detail()
	}
	var srv *health.Server
	if addr := op.metricsAddr; addr != "" {
		srv, err = health.Listen(health.Config{Addr: addr, Ready: ready, Gatherer: reg, Pprof: op.pprof})
		switch {
		case err != nil && op.metricsDefault && errors.Is(err, syscall.EADDRINUSE):
			// Another relay on this host has the default port. Running
			// without metrics beats not running; a chosen address must work.
			log.Warn().Err(err).Msg("no /metrics, /healthz or /readyz: the default --metrics-addr is in use; set another")
			srv = nil
		case err != nil:
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	ev := log.Info().Str("database", redact(cfg.DatabaseURL)).Str("nats", redact(cfg.NATSURL)).
		Str("stream", cfg.Publish.Stream).Str("slot", cfg.Slot).Dur("retention", op.retention).
		Int("procs", runtime.GOMAXPROCS(0))
	addr := ""
	if srv != nil {
		addr = srv.Addr()
		ev = ev.Str("metrics", "http://"+addr+"/metrics")
	}
	ev.Msg("starting cdcrelay " + version)
	if op.started != nil {
		op.started(r, addr)
	}

	// The listener outlives the relay's drain, so /healthz answers until
	// the process is about to exit.
	relayCtx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	var g errgroup.Group
	g.Go(func() error {
		defer stopServing()
		return r.Run(relayCtx)
	})
	g.Go(func() error { return failover.Run(serveCtx) })
	if srv != nil {
		g.Go(func() error {
			err := srv.Serve(serveCtx)
			if err != nil {
				stopRelay()
			}
			return err
		})
	}
	return g.Wait()
}

// checkRetention fails start-up when retention is on and the role may not
// delete from the outbox: pruning would otherwise fail every minute for as
// long as the relay runs. It runs the relay's own start-up checks with
// DELETE added, so problems come in the order and words the relay would use;
// when the server cannot be reached at all, the relay's start says so.
func checkRetention(ctx context.Context, pool *pgxpool.Pool, cfg relay.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if pool.Ping(ctx) != nil {
		return nil
	}
	check := replication.CheckConfig{Slot: cfg.Slot, Publication: cfg.Publication, Delete: true}
	err := replication.Check(ctx, pool, check)
	var problem *replication.CheckError
	if !errors.As(err, &problem) {
		return nil // not a precondition: the relay's start reports it
	}
	check.Delete = false
	if replication.Check(ctx, pool, check) == nil {
		return fmt.Errorf("--retention: %w, or run with --retention 0", problem)
	}
	return err
}
