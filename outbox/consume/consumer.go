// Package consume reads a JetStream stream at least once and helps apply
// each event's effects exactly once.
//
// A Consumer wraps a durable pull consumer with explicit acks: Next yields a
// Delivery, and one that is not acknowledged (the process crashed, or the
// handler failed) comes again after AckWait. Redelivery makes the effects
// run twice unless the handler is idempotent; Seen gives it that property
// for effects that are written to Postgres: it records the event id in
// bus.inbox inside the handler's own transaction, so the effects and the
// record commit together or not at all. Apply wraps the whole sequence.
package consume

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 1000
	DefaultPrefetch      = 100
)

// ErrClosed is returned by Next after Close, or once the NATS connection is
// closed.
var ErrClosed = errors.New("consume: consumer closed")

// Config names and tunes a durable consumer.
type Config struct {
	// Stream the consumer reads. Required.
	Stream string
	// Durable is the consumer's name on the server; instances with the same
	// name share its position and its unacknowledged messages. Required.
	Durable string
	// FilterSubjects limits the consumer to these subjects (wildcards allowed).
	// Empty means every subject of the stream.
	FilterSubjects []string
	// AckWait is how long a delivery may go unacknowledged before the server
	// sends it again. Default DefaultAckWait.
	AckWait time.Duration
	// MaxDeliver caps deliveries of one message; after that the server stops
	// sending it. Zero means no cap.
	MaxDeliver int
	// MaxAckPending caps deliveries outstanding at once across all instances.
	// Default DefaultMaxAckPending.
	MaxAckPending int
	// Prefetch is how many messages one instance asks for ahead of Next.
	// Prefetched messages count against MaxAckPending and, after a crash,
	// come again only after AckWait. Default DefaultPrefetch.
	Prefetch int
}

func (cfg Config) withDefaults() Config {
	if cfg.AckWait == 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.MaxAckPending == 0 {
		cfg.MaxAckPending = DefaultMaxAckPending
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = min(DefaultPrefetch, cfg.MaxAckPending)
	}
	return cfg
}

func (cfg Config) validate() error {
	var errs []error
	if cfg.Stream == "" {
		errs = append(errs, errors.New("no Stream: the stream name is required"))
	}
	if cfg.Durable == "" {
		errs = append(errs, errors.New("no Durable: the consumer name is required"))
	} else if strings.ContainsAny(cfg.Durable, ". \t\r\n*>/\\") {
		errs = append(errs, fmt.Errorf("bad Durable %q: a consumer name has no dots, spaces, slashes or wildcards", cfg.Durable))
	}
	for _, s := range cfg.FilterSubjects {
		if s == "" {
			errs = append(errs, errors.New("empty subject in FilterSubjects"))
		}
	}
	if cfg.AckWait < 0 {
		errs = append(errs, fmt.Errorf("AckWait %v: must be positive", cfg.AckWait))
	}
	if cfg.MaxDeliver < 0 {
		errs = append(errs, fmt.Errorf("MaxDeliver %d: must be positive (0 means no cap)", cfg.MaxDeliver))
	}
	if cfg.MaxAckPending < 0 {
		errs = append(errs, fmt.Errorf("MaxAckPending %d: must be positive", cfg.MaxAckPending))
	}
	if cfg.Prefetch < 0 || cfg.Prefetch > cfg.MaxAckPending {
		errs = append(errs, fmt.Errorf("bad Prefetch %d: must be between 1 and MaxAckPending (%d)", cfg.Prefetch, cfg.MaxAckPending))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("consume: invalid config: %w", err)
	}
	return nil
}

// Consumer is one instance reading a durable pull consumer. Next is meant
// for one goroutine; Deliveries may be acknowledged from any.
type Consumer struct {
	cfg  Config
	cons jetstream.Consumer
	iter jetstream.MessagesContext
}

// New creates the durable consumer, or updates it to cfg if it exists, and
// starts pulling. The caller owns js and its connection; Close does not close
// them.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Consumer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: cfg.MaxAckPending,
	}
	if cfg.MaxDeliver == 0 {
		cc.MaxDeliver = -1
	}
	// A single filter goes in FilterSubject, which servers before 2.10 know.
	if len(cfg.FilterSubjects) == 1 {
		cc.FilterSubject = cfg.FilterSubjects[0]
	} else {
		cc.FilterSubjects = cfg.FilterSubjects
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, cc)
	if err != nil {
		return nil, fmt.Errorf("consume: create consumer %s on stream %s: %w", cfg.Durable, cfg.Stream, err)
	}
	iter, err := cons.Messages(
		jetstream.PullMaxMessages(cfg.Prefetch),
		// Missed heartbeats mean NATS is away; the iterator re-pulls once it
		// is back, so Next keeps waiting instead of failing.
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return nil, fmt.Errorf("consume: pull from %s: %w", cfg.Durable, err)
	}
	return &Consumer{cfg: cfg, cons: cons, iter: iter}, nil
}

// Next waits for the next delivery, until ctx ends or the consumer is closed.
func (c *Consumer) Next(ctx context.Context) (*Delivery, error) {
	msg, err := c.iter.Next(jetstream.NextContext(ctx))
	switch {
	case err == nil:
		return newDelivery(msg)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, jetstream.ErrMsgIteratorClosed):
		return nil, fmt.Errorf("%w: %w", ErrClosed, err)
	default:
		return nil, fmt.Errorf("consume: next from %s: %w", c.cfg.Durable, err)
	}
}

// Close stops pulling. Deliveries not yet acknowledged, including prefetched
// ones Next never returned, are sent again after AckWait.
func (c *Consumer) Close() { c.iter.Stop() }

// Info returns the server's view of the durable consumer.
func (c *Consumer) Info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	info, err := c.cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("consume: info of %s: %w", c.cfg.Durable, err)
	}
	return info, nil
}
