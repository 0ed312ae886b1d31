package publish

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream defaults, those of a production event bus.
const (
	// DefaultMaxAge keeps a week of events, matching the outbox's retention.
	DefaultMaxAge = 7 * 24 * time.Hour
	// DefaultMaxBytes caps the stream at 768 MiB; the oldest events go first.
	DefaultMaxBytes = 768 << 20
	// DefaultDuplicateWindow covers a relay restart or a failover: inside it a
	// resent event is dropped as a duplicate. JetStream keeps one entry per
	// message in the window, so at 10k events/s two minutes cost ~1.2 M entries.
	DefaultDuplicateWindow = 2 * time.Minute
)

// StreamConfig is what `cdcrelay stream ensure` manages.
type StreamConfig struct {
	Name            string
	Subjects        []string
	MaxAge          time.Duration // 0: DefaultMaxAge
	MaxBytes        int64         // 0: DefaultMaxBytes
	DuplicateWindow time.Duration // 0: DefaultDuplicateWindow
	Replicas        int           // 0: 1
	// AllowAtomic turns on atomic batch publishing (allow_atomic), which
	// Config.AtomicTransactions needs. Off, it is left as the stream has it.
	AllowAtomic bool
}

// EnsureStream creates the stream, or updates an existing one to the given
// subjects and limits (file storage, discard old, batched publishing
// allowed). It reports whether the stream was created.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) (bool, error) {
	if c.Name == "" || len(c.Subjects) == 0 {
		return false, errors.New("ensure stream: a name and at least one subject are required")
	}
	cfg := jetstream.StreamConfig{
		Name:       c.Name,
		Subjects:   c.Subjects,
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     orDefault(c.MaxAge, DefaultMaxAge),
		MaxBytes:   orDefault(c.MaxBytes, DefaultMaxBytes),
		Duplicates: orDefault(c.DuplicateWindow, DefaultDuplicateWindow),
		Replicas:   orDefault(c.Replicas, 1),
		MaxMsgs:    -1,
		// The relay publishes in fast-ingest batches (nats-server ≥ 2.14).
		AllowBatchPublish: true,
	}
	s, err := js.Stream(ctx, c.Name)
	if err == nil {
		// Never turn off what someone else may rely on.
		cfg.AllowAtomicPublish = s.CachedInfo().Config.AllowAtomicPublish
	}
	cfg.AllowAtomicPublish = cfg.AllowAtomicPublish || c.AllowAtomic
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return false, fmt.Errorf("create stream %s: %w", c.Name, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read stream %s: %w", c.Name, err)
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return false, fmt.Errorf("update stream %s: %w", c.Name, err)
	}
	return false, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
