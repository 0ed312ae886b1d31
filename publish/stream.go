package publish

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// StreamConfig is what `cdcrelay stream ensure` manages. A zero limit is
// one not given: a new stream gets the default, an existing one keeps its
// own.
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

// Ensured is what EnsureStream did: created the stream, or changed an
// existing one as Changes say (none: it had everything already). Config is
// the stream's configuration now.
type Ensured struct {
	Created bool
	Changes []string
	Config  jetstream.StreamConfig
}

// EnsureStream creates the stream (file storage, discard old, batched
// publishing allowed, defaults for the limits not given), or adds to an
// existing one what the relay needs: the subjects not captured yet, batched
// (and, if asked, atomic) publishing, and the limits given. The stream is
// shared, so nothing else changes: no subject, limit or setting that others
// may rely on is taken away or reset.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) (Ensured, error) {
	if c.Name == "" || len(c.Subjects) == 0 {
		return Ensured{}, errors.New("ensure stream: a name and at least one subject are required")
	}
	s, err := js.Stream(ctx, c.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		cfg := newStream(c)
		_, err = js.CreateStream(ctx, cfg)
		if err == nil {
			return Ensured{Created: true, Config: cfg}, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return Ensured{}, fmt.Errorf("create stream %s: %w", c.Name, err)
		}
		// Another replica created it meanwhile, perhaps differently.
		s, err = js.Stream(ctx, c.Name)
	}
	if err != nil {
		return Ensured{}, fmt.Errorf("read stream %s: %w", c.Name, err)
	}
	cfg := s.CachedInfo().Config
	changes, err := addTo(&cfg, c)
	if err != nil {
		return Ensured{}, fmt.Errorf("stream %s: %w", c.Name, err)
	}
	if len(changes) == 0 {
		return Ensured{Config: cfg}, nil
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return Ensured{}, fmt.Errorf("update stream %s (%s): %w", c.Name, strings.Join(changes, "; "), err)
	}
	return Ensured{Changes: changes, Config: cfg}, nil
}

func newStream(c StreamConfig) jetstream.StreamConfig {
	return jetstream.StreamConfig{
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
		AllowBatchPublish:  true,
		AllowAtomicPublish: c.AllowAtomic,
	}
}

// addTo changes cfg, an existing stream's configuration, as c asks and
// returns what it changed; see EnsureStream.
func addTo(cfg *jetstream.StreamConfig, c StreamConfig) ([]string, error) {
	subjects, added, err := addSubjects(cfg.Subjects, c.Subjects)
	if err != nil {
		return nil, err
	}
	var changes []string
	if len(added) > 0 {
		cfg.Subjects = subjects
		changes = append(changes, "subjects "+strings.Join(subjects, ",")+" (added "+strings.Join(added, ",")+")")
	}
	if !cfg.AllowBatchPublish {
		cfg.AllowBatchPublish = true
		changes = append(changes, "batched publishing allowed")
	}
	if c.AllowAtomic && !cfg.AllowAtomicPublish {
		cfg.AllowAtomicPublish = true
		changes = append(changes, "atomic publishing allowed")
	}
	set := func(name string, have *time.Duration, want time.Duration) {
		if want != 0 && *have != want {
			changes = append(changes, fmt.Sprintf("%s %v (was %v)", name, want, *have))
			*have = want
		}
	}
	set("max age", &cfg.MaxAge, c.MaxAge)
	set("duplicate window", &cfg.Duplicates, c.DuplicateWindow)
	if c.MaxBytes != 0 && cfg.MaxBytes != c.MaxBytes {
		changes = append(changes, fmt.Sprintf("max bytes %d (was %d)", c.MaxBytes, cfg.MaxBytes))
		cfg.MaxBytes = c.MaxBytes
	}
	if c.Replicas != 0 && cfg.Replicas != c.Replicas {
		changes = append(changes, fmt.Sprintf("replicas %d (was %d)", c.Replicas, cfg.Replicas))
		cfg.Replicas = c.Replicas
	}
	return changes, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
