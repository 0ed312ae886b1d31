package poller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Poller is one replica; run several with the same LockID and one leads.
type Poller struct {
	cfg Config
	log zerolog.Logger
}

// New checks cfg and returns a poller.
func New(cfg Config, log zerolog.Logger) (*Poller, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Poller{cfg: cfg, log: log}, nil
}

// Run connects to NATS and campaigns for leadership until ctx ends, draining
// the outbox whenever it leads. Losing the database connection costs the
// lead; it reconnects and campaigns again.
func (p *Poller) Run(ctx context.Context) error {
	nc, err := nats.Connect(p.cfg.NATSURL, nats.MaxReconnects(-1), nats.Name("outbox-poller"))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(p.cfg.BatchSize))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	for {
		err := p.lead(ctx, js)
		if ctx.Err() != nil {
			return nil
		}
		p.log.Warn().Err(err).Msg("lost the lead; campaigning again")
		if err := sleep(ctx, p.cfg.ElectionInterval); err != nil {
			return nil
		}
	}
}

// lead holds one database connection: it carries the advisory lock, the
// LISTEN and every batch transaction, so a leader that loses it loses
// everything at once and cannot flip rows as a deposed leader.
func (p *Poller) lead(ctx context.Context, js jetstream.JetStream) error {
	cc, err := pgx.ParseConfig(p.cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	// The handler runs on the goroutine reading the connection, which is
	// this one: a plain bool is enough.
	notified := false
	cc.OnNotification = func(*pgconn.PgConn, *pgconn.Notification) { notified = true }
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, p.cfg.LockID).Scan(&got); err != nil {
			return fmt.Errorf("try advisory lock: %w", err)
		}
		if got {
			break
		}
		if err := sleep(ctx, p.cfg.ElectionInterval); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// The flip need not wait for its WAL to reach disk: a flip lost in a
	// crash only means the batch is published again, and JetStream drops
	// the copies by Nats-Msg-Id. cdcrelay's flips make the same trade.
	if _, err := conn.Exec(ctx, `SET synchronous_commit = off`); err != nil {
		return fmt.Errorf("set synchronous_commit: %w", err)
	}
	p.log.Info().Int64("lock_id", p.cfg.LockID).Msg("leading")
	if p.cfg.OnLead != nil {
		p.cfg.OnLead()
	}

	d := &drainer{conn: conn, js: js, cfg: &p.cfg}
	backoff := 100 * time.Millisecond
	for {
		notified = false
		n, err := d.cycle(ctx)
		var pubErr *publishError
		switch {
		case errors.As(err, &pubErr):
			// The rows stay unpublished and are sent again with the same
			// Nats-Msg-Id; JetStream drops the copies it already stored.
			p.log.Warn().Err(err).Dur("backoff", backoff).Msg("publish failed; retrying the batch")
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		case err != nil:
			return err
		}
		backoff = 100 * time.Millisecond
		if n == p.cfg.BatchSize || notified {
			continue // more may be waiting
		}
		wctx, cancel := context.WithTimeout(ctx, p.cfg.IdlePoll)
		err = conn.PgConn().WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !pgconn.Timeout(err) {
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
