// Package relay wires the pipeline of `cdcrelay run`: it checks the server,
// takes leadership, and while leader streams the outbox from the logical slot
// through the publish window into JetStream, flipping and confirming behind
// the acks. It loses leadership, reconnects and leads again as often as it
// must; only a cancelled context ends Run.
package relay

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/checkpoint"
	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/internal/backoff"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/replication"
	"github.com/cdcrelay/cdcrelay/slot"
)

// Relay is one cdcrelay process: a leader or a standby.
type Relay struct {
	cfg Config
	log zerolog.Logger

	pool    *pgxpool.Pool
	nc      *nats.Conn
	elector *election.Elector

	// Observable state, for readiness, metrics and tests.
	streaming atomic.Bool
	// originFiltered is set while the stream filters by origin.
	originFiltered atomic.Bool
	session        atomic.Pointer[slot.Session] // the current (or last) term's
	flips          checkpoint.Stats
	flipsGivenUp   atomic.Uint64
	stalls         stalls
	database       string // current_database() of DatabaseURL
	heartbeat      slot.Heartbeats
	pipeline       atomic.Pointer[publish.Pipeline]
	termCounter    atomic.Uint64
	counters       publish.Counters
	running        atomic.Bool // between a successful start and Run's return
	ends           termEnds
	// leaderSince and streamingSince are unix nanos, zero when not.
	leaderSince    atomic.Int64
	streamingSince atomic.Int64
}

// New validates cfg and prepares a relay; Run connects.
func New(cfg Config, log zerolog.Logger) (*Relay, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, err := pgx.ParseConfig(cfg.DatabaseURL); err != nil {
		return nil, &ConfigError{Setting: SettingDatabaseURL, Problem: SettingInvalid, Err: err}
	}
	el, err := election.New(cfg.Election, log)
	if err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	return &Relay{cfg: cfg, log: log, elector: el}, nil
}

// Run checks the server, then leads whenever it holds the lock, until ctx
// ends (a clean shutdown returns nil). Start-up problems a person must fix
// (configuration, privileges, wal_level, unreachable NATS) return at once.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.open(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // shut down while starting: a clean exit
		}
		return err
	}
	defer r.close()
	r.running.Store(true)
	defer r.running.Store(false)

	retry := backoff.Backoff{Base: time.Second, Limit: 30 * time.Second}
	for {
		lease, err := r.elector.Acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("acquire leadership: %w", err)
		}
		r.log.Info().Uint64("term", r.termCounter.Add(1)).Msg("leading")
		began := time.Now()
		r.leaderSince.Store(lease.Acquired().UnixNano())
		err = r.lead(ctx, lease)
		r.leaderSince.Store(0)
		r.ends.add(termCause(err))
		if time.Since(began) > time.Minute {
			retry.Reset() // a term that ran a while was healthy: retry promptly
		}
		relCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if relErr := lease.Release(relCtx); relErr != nil && err == nil {
			r.log.Warn().Err(relErr).Msg("release leadership")
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		var fatal *replication.CheckError
		if errors.As(err, &fatal) {
			return err
		}
		wait := retry.Next()
		r.log.Error().Err(err).Dur("retry_in", wait).Msg("leadership term ended")
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

func (r *Relay) open(ctx context.Context) error {
	pcfg, err := poolConfig(r.cfg.DatabaseURL)
	if err != nil {
		return &ConfigError{Setting: SettingDatabaseURL, Problem: SettingInvalid, Err: err}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return &ConfigError{Setting: SettingDatabaseURL, Problem: SettingInvalid, Err: err}
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return &ConfigError{Setting: SettingDatabaseURL, Problem: ServerUnreachable, Err: err}
	}
	if err := replication.Check(ctx, pool, replication.CheckConfig{
		Slot: r.cfg.Slot, Publication: r.cfg.Publication, Table: "bus.outbox",
		ApplicationName: replication.ApplicationName(r.cfg.DatabaseURL),
		StatusInterval:  r.cfg.StatusInterval,
	}); err != nil {
		pool.Close()
		return err
	}
	if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&r.database); err != nil {
		pool.Close()
		return fmt.Errorf("read database name: %w", err)
	}
	opts := append([]nats.Option{
		nats.Name("cdcrelay"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// Publishes while disconnected must fail, not be flushed stale on
		// reconnect: the pipeline resends them itself, in order.
		nats.ReconnectBufSize(-1),
	}, r.cfg.NATSOptions...)
	opts = append(opts, natsDialer())
	nc, err := nats.Connect(r.cfg.NATSURL, opts...)
	if err != nil {
		pool.Close()
		return &ConfigError{Setting: SettingNATSURL, Problem: ServerUnreachable, Err: err}
	}
	if err := publish.CheckServer(nc); err != nil {
		nc.Close()
		pool.Close()
		return err
	}
	if err := r.prepareStream(ctx, nc); err != nil {
		nc.Close()
		pool.Close()
		return err
	}
	r.pool, r.nc = pool, nc
	return nil
}

// prepareStream creates or updates the stream when asked to, and otherwise
// checks that it exists: a missing stream is a start-up error, not a term
// that fails and retries forever.
func (r *Relay) prepareStream(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if ec := r.cfg.EnsureStream; ec != nil && len(ec.Subjects) > 0 {
		want := *ec
		want.Name = r.cfg.Publish.Stream
		want.AllowAtomic = want.AllowAtomic || r.cfg.Publish.AtomicTransactions
		done, err := publish.EnsureStream(ctx, js, want)
		switch {
		case err != nil:
			return err
		case done.Created:
			r.log.Info().Str("stream", want.Name).Strs("subjects", done.Config.Subjects).Msg("stream created")
		case len(done.Changes) > 0:
			r.log.Info().Str("stream", want.Name).Strs("changes", done.Changes).Msg("stream updated")
		}
		return nil
	}
	if r.cfg.Publish.AtomicTransactions {
		return publish.CheckAtomicStream(ctx, js, r.cfg.Publish.Stream)
	}
	return publish.CheckStream(ctx, js, r.cfg.Publish.Stream)
}

func (r *Relay) close() {
	r.nc.Close()
	r.pool.Close()
}

// Streaming reports whether this process is the leader and reading the slot.
func (r *Relay) Streaming() bool { return r.streaming.Load() }

// State is this process's leadership state.
func (r *Relay) State() election.State { return r.elector.State() }
