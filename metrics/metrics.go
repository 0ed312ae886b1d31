// Package metrics exports what an operator needs to see of a relay as
// Prometheus metrics, on a registry the caller passes in: the relay's own
// state and counters (read at scrape time from relay.Snapshot and
// relay.Counters), the publish ack latency histogram, the slot's lag as the
// server sees it, and the outbox's unpublished backlog (measured
// incrementally by the leader, see Backlog).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/relay"
)

// Namespace prefixes every metric name.
const Namespace = "cdcrelay"

// DefaultQueryTimeout bounds the queries a scrape runs against PostgreSQL.
const DefaultQueryTimeout = 2 * time.Second

// Relay is what the collector reads from a relay at scrape time;
// *relay.Relay satisfies it.
type Relay interface {
	Snapshot() relay.Snapshot
	Counters() *publish.Counters
	Ready() (bool, string)
}

// PruneStats reports retention's work; *retention.Pruner satisfies it.
type PruneStats interface {
	Pruned() uint64
	Failures() uint64
}

// Config names the sources of the collector. Only Relay is required.
type Config struct {
	Relay Relay
	// Pool, when set, is queried at scrape time for the slot's lag and
	// retained WAL. A small pool of its own (two connections) keeps scrapes
	// off the relay's connections.
	Pool *pgxpool.Pool
	// Slot is the replication slot to report; default relay.DefaultSlot.
	Slot string
	// QueryTimeout bounds each scrape-time query (default DefaultQueryTimeout).
	QueryTimeout time.Duration
	// Backlog, when set, supplies the unpublished backlog.
	Backlog *Backlog
	// Prune, when set, supplies retention's counts.
	Prune PruneStats
	// Failover, when set, supplies failover readiness and the slot's idle
	// time.
	Failover *FailoverWatch
}

// NewRegistry returns the registry a relay process serves: the Go runtime's
// and the process's metrics and cdcrelay_build_info, labelled with version.
// NewAckLatency and Register add the relay's own.
func NewRegistry(version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace:   Namespace,
			Name:        "build_info",
			Help:        "1, labelled with the version of cdcrelay and of Go.",
			ConstLabels: prometheus.Labels{"version": version, "go_version": runtime.Version()},
		}, func() float64 { return 1 }))
	return reg
}

// Register adds the relay collector to reg. The ack latency histogram is
// separate (NewAckLatency), because the relay's configuration needs it
// before the relay exists.
func Register(reg prometheus.Registerer, cfg Config) error {
	if cfg.Relay == nil {
		return errors.New("metrics: no relay")
	}
	if cfg.Slot == "" {
		cfg.Slot = relay.DefaultSlot
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	c := newCollector(cfg)
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("register relay metrics: %w", err)
	}
	return nil
}

// AckLatency is the histogram of publish-to-ack times; pass Observe as
// publish.Config.OnAck.
type AckLatency struct{ h prometheus.Histogram }

// NewAckLatency creates the histogram and registers it on reg.
func NewAckLatency(reg prometheus.Registerer) (*AckLatency, error) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace,
		Name:      "publish_ack_latency_seconds",
		Help:      "Time from handing an event to JetStream to its ack.",
		// From a local server's sub-millisecond acks to the ack timeout.
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	if err := reg.Register(h); err != nil {
		return nil, fmt.Errorf("register ack latency: %w", err)
	}
	return &AckLatency{h: h}, nil
}

// Observe records one ack; safe for concurrent use.
func (a *AckLatency) Observe(d time.Duration) { a.h.Observe(d.Seconds()) }

// withTimeout is the context of one scrape-time query.
func withTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
