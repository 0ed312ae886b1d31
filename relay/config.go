package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/internal/rawsock"
	"github.com/cdcrelay/cdcrelay/publish"
)

// Defaults for Config fields left zero.
const (
	DefaultStream      = "bus"
	DefaultSlot        = "cdcrelay"
	DefaultPublication = "cdcrelay_outbox"
	// DefaultStatusInterval is the longest the relay stays silent towards the
	// walsender, also while back-pressured: well inside wal_sender_timeout
	// (60 s by default).
	DefaultStatusInterval = 5 * time.Second
	// DefaultReceiveTimeout is how long the walsender may stay silent
	// before the term ends, PostgreSQL's default wal_receiver_timeout (see
	// slot.Config.ReceiveTimeout); it also bounds the replication
	// connection's set-up.
	DefaultReceiveTimeout = 60 * time.Second
	// DefaultHeartbeatInterval is how often a heartbeat goes through the slot.
	DefaultHeartbeatInterval = 10 * time.Second
	// DefaultRestartInterval is how often the leader has the running
	// transactions logged while WAL moves, for the slot's restart point
	// (PostgreSQL 16+; see keepRestartClose).
	DefaultRestartInterval = time.Second
	// DefaultShutdownTimeout bounds the drain on SIGTERM.
	DefaultShutdownTimeout = 20 * time.Second
	// DefaultSlotCreateTimeout bounds how long creating the slot may wait for
	// transactions that were open when it began; then the term ends and the
	// creation is retried.
	DefaultSlotCreateTimeout = 2 * time.Minute
)

// Config is everything `cdcrelay run` needs.
type Config struct {
	// DatabaseURL is the PostgreSQL URL; replication=database is added for
	// the replication connection.
	DatabaseURL string
	// NATSURL is one or more comma-separated NATS URLs.
	NATSURL string
	// NATSOptions are added to the relay's own (credentials, TLS, ...).
	NATSOptions []nats.Option

	Slot        string // default DefaultSlot
	Publication string // default DefaultPublication

	// Publish configures the in-flight window; Publish.Stream defaults to DefaultStream.
	Publish publish.Config
	// EnsureStream, when it has subjects, creates or updates the stream at start-up.
	EnsureStream *publish.StreamConfig

	// Election configures leadership; its URL defaults to DatabaseURL and
	// its WrapConn to rawsock.Wrap (the lock connection runs the flips).
	Election election.Config

	// WhileLeading are tasks run during every leadership term (e.g.
	// retention pruning), with the term's context and the runner of the lock
	// connection. On PostgreSQL 16+ that connection may carry the flip's
	// replication origin: what a task writes through it is not decoded, and
	// it must not insert outbox rows (the guard refuses them). A task returns nil when its context ends; an error ends
	// the term.
	WhileLeading []func(ctx context.Context, run election.Runner) error

	// Unfiltered streams without pgoutput's origin filter: the relay's
	// walsender then decodes every flip too (see originFilter). By default
	// a term on PostgreSQL 16+ filters whenever the outbox's guard allows.
	Unfiltered bool

	StatusInterval    time.Duration // default DefaultStatusInterval
	ReceiveTimeout    time.Duration // default DefaultReceiveTimeout; negative disables
	HeartbeatInterval time.Duration // default DefaultHeartbeatInterval; negative disables
	RestartInterval   time.Duration // default DefaultRestartInterval; negative disables
	ShutdownTimeout   time.Duration // default DefaultShutdownTimeout
	SlotCreateTimeout time.Duration // default DefaultSlotCreateTimeout
}

func (c *Config) setDefaults() {
	if c.Slot == "" {
		c.Slot = DefaultSlot
	}
	if c.Publication == "" {
		c.Publication = DefaultPublication
	}
	if c.Publish.Stream == "" {
		c.Publish.Stream = DefaultStream
	}
	if c.Election.URL == "" {
		c.Election.URL = c.DatabaseURL
	}
	if c.Election.WrapConn == nil {
		// The flips run on the lock connection: a hot socket (dial.go).
		c.Election.WrapConn = rawsock.Wrap
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.ReceiveTimeout == 0 {
		c.ReceiveTimeout = DefaultReceiveTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.RestartInterval == 0 {
		c.RestartInterval = DefaultRestartInterval
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.SlotCreateTimeout == 0 {
		c.SlotCreateTimeout = DefaultSlotCreateTimeout
	}
}

func (c *Config) validate() error {
	switch {
	case c.DatabaseURL == "":
		return &ConfigError{Setting: SettingDatabaseURL, Problem: SettingUnset}
	case c.NATSURL == "":
		return &ConfigError{Setting: SettingNATSURL, Problem: SettingUnset}
	case c.StatusInterval < 0:
		return fmt.Errorf("status interval %v must be positive", c.StatusInterval)
	}
	return nil
}
