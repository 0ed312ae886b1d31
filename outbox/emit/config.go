package emit

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/outbox"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultQueueSize      = 8192
	DefaultInFlight       = 1024
	DefaultAckTimeout     = 5 * time.Second
	DefaultConnectTimeout = 2 * time.Second
	DefaultRetryMin       = 100 * time.Millisecond
	DefaultRetryMax       = 30 * time.Second
	DefaultName           = "cdcrelay-emitter"
)

// Config configures an Emitter. It is validated once, by New.
type Config struct {
	// URL is the NATS server URL, or a comma-separated list of them. Required.
	URL string
	// Stream is the JetStream stream the emitted subjects must land in.
	// Required: Start checks that it exists and captures the prefix, and every
	// message asks the server to refuse it if it would land anywhere else.
	Stream string
	// SubjectPrefix is prepended to every event name as "<prefix>.<name>". It
	// may hold {placeholders}, each filled from PrefixValues at construction,
	// e.g. "event.{chain_id}". Required.
	SubjectPrefix string
	// PrefixValues fills the placeholders of SubjectPrefix. Every placeholder
	// needs a value, every value needs a placeholder, and a value is exactly
	// one subject token (no dots), so the subject depth is fixed.
	PrefixValues map[string]string

	// QueueSize bounds events accepted by Emit and not yet handed to NATS;
	// when it is full Emit drops (reason queue_full). Default DefaultQueueSize.
	QueueSize int
	// InFlight bounds events published and not yet acknowledged. When it is
	// full the publisher waits, the queue fills, and Emit drops. Default
	// DefaultInFlight.
	InFlight int
	// AckTimeout is how long one publish may wait for its JetStream ack
	// before it counts as dropped (reason ack). Default DefaultAckTimeout.
	AckTimeout time.Duration
	// ConnectTimeout bounds each connection attempt. Default
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// RetryMin and RetryMax bound the back-off between connection attempts
	// after a failed Start; it doubles from RetryMin up to RetryMax.
	// Defaults DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// ReconnectBufSize is how many bytes of publishes the connection buffers
	// while it reconnects after having been up (acks for them may still time
	// out). Zero keeps the nats.go default (8 MiB); -1 disables the buffer so
	// that publishes during an outage are dropped at once (reason publish).
	ReconnectBufSize int
	// Name identifies the connection to the server. Default DefaultName.
	Name string
	// NATSOptions are extra connection options (credentials, TLS, ...),
	// applied after the emitter's own.
	NATSOptions []nats.Option

	// Logger receives the line logged when Start cannot connect and the one
	// logged when a later attempt succeeds. The zero value logs nothing.
	Logger zerolog.Logger
	// Registerer receives the drop counter and the queue gauges. Nil means
	// they are not registered.
	Registerer prometheus.Registerer
}

// withDefaults returns cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.InFlight == 0 {
		cfg.InFlight = DefaultInFlight
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	return cfg
}

// validate checks a defaulted config and returns the resolved subject prefix.
func (cfg Config) validate() (string, error) {
	var errs []error
	if strings.TrimSpace(cfg.URL) == "" {
		errs = append(errs, errors.New("no URL: the NATS server URL is required"))
	}
	if cfg.Stream == "" {
		errs = append(errs, errors.New("no Stream: the stream name is required"))
	} else if strings.ContainsAny(cfg.Stream, ". \t\r\n*>") {
		errs = append(errs, fmt.Errorf("bad Stream %q: a stream name has no dots, spaces or wildcards", cfg.Stream))
	}
	prefix, err := resolvePrefix(cfg.SubjectPrefix, cfg.PrefixValues)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("QueueSize %d: must be positive (0 means %d)", cfg.QueueSize, DefaultQueueSize))
	}
	if cfg.InFlight < 0 {
		errs = append(errs, fmt.Errorf("InFlight %d: must be positive (0 means %d)", cfg.InFlight, DefaultInFlight))
	}
	if cfg.AckTimeout < 0 {
		errs = append(errs, fmt.Errorf("AckTimeout %v: must be positive", cfg.AckTimeout))
	}
	if cfg.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("ConnectTimeout %v: must be positive", cfg.ConnectTimeout))
	}
	if cfg.RetryMin < 0 || cfg.RetryMax < cfg.RetryMin {
		errs = append(errs, fmt.Errorf("RetryMin %v, RetryMax %v: need 0 < RetryMin <= RetryMax", cfg.RetryMin, cfg.RetryMax))
	}
	if cfg.ReconnectBufSize < -1 {
		errs = append(errs, fmt.Errorf("ReconnectBufSize %d: must be -1 (off), 0 (default) or a size in bytes", cfg.ReconnectBufSize))
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("emit: invalid config: %w", err)
	}
	return prefix, nil
}

// resolvePrefix fills the {placeholders} of tmpl from values and checks that
// the result is a valid subject. Both directions are checked: a placeholder
// with no value and a value with no placeholder are each a mistake.
func resolvePrefix(tmpl string, values map[string]string) (string, error) {
	if tmpl == "" {
		return "", errors.New("no SubjectPrefix: the subject prefix is required")
	}
	var b strings.Builder
	used := make(map[string]bool, len(values))
	var errs []error
	for rest := tmpl; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return "", fmt.Errorf("SubjectPrefix %q: unmatched '}'", tmpl)
			}
			b.WriteString(rest)
			break
		}
		if strings.IndexByte(rest[:open], '}') >= 0 {
			return "", fmt.Errorf("SubjectPrefix %q: unmatched '}'", tmpl)
		}
		b.WriteString(rest[:open])
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return "", fmt.Errorf("SubjectPrefix %q: unmatched '{'", tmpl)
		}
		name := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		if name == "" || strings.ContainsAny(name, "{ \t") {
			return "", fmt.Errorf("SubjectPrefix %q: bad placeholder {%s}", tmpl, name)
		}
		used[name] = true
		v, ok := values[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("SubjectPrefix %q has {%s} but PrefixValues has no %q", tmpl, name, name))
		case v == "" || strings.Contains(v, "."):
			errs = append(errs, fmt.Errorf("PrefixValues[%q] = %q: must be one non-empty subject token (no dots)", name, v))
		default:
			b.WriteString(v)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if !used[name] {
			errs = append(errs, fmt.Errorf("PrefixValues has %q but SubjectPrefix %q has no {%s}", name, tmpl, name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	prefix := b.String()
	if err := outbox.ValidateSubject(prefix); err != nil {
		return "", fmt.Errorf("SubjectPrefix %q resolves to %q: %w", tmpl, prefix, err)
	}
	return prefix, nil
}
