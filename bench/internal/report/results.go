// Package report holds the benchmark's results and renders them: a
// Markdown table for people, JSON for machines, and an SVG plot of latency
// percentiles against offered rate, drawn by hand so the benchmark needs no
// plotting library.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Systems, in the order columns appear.
const (
	None   = "none"
	Relay  = "cdcrelay"
	Poller = "poller"
	// RelayAtomic is cdcrelay with --atomic-transactions, measured only
	// beside its default mode (Results.Atomic).
	RelayAtomic = "cdcrelay-atomic"
)

// Results is everything one `make bench` run measured.
type Results struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Quick    bool          `json:"quick"`
	Machine  Machine       `json:"machine"`
	Settings Settings      `json:"settings"`

	Idle    []IdleRun    `json:"idle"`
	Writer  []WriterRun  `json:"writer"`
	Latency []LatencyRun `json:"latency"`
	// StageRuns are latency runs of cdcrelay with a replication tap beside
	// it, for the per-stage breakdown; apart because the tap adds load.
	StageRuns []LatencyRun  `json:"stage_runs,omitempty"`
	Sustain   []SustainRun  `json:"sustain"`
	Shared    []SharedRun   `json:"shared"`
	Catchup   []CatchupRun  `json:"catchup"`
	Failover  []FailoverRun `json:"failover"`
	// Atomic are cdcrelay's runs in atomic and default mode, side by side.
	Atomic []AtomicRun `json:"atomic,omitempty"`
	// Errors are measurements that could not run, with why.
	Errors []string `json:"errors,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	CPU      string  `json:"cpu"`
	Cores    int     `json:"cores"`
	MemoryGB float64 `json:"memory_gb"`
	Kernel   string  `json:"kernel"`
	Postgres string  `json:"postgres"`
	NATS     string  `json:"nats"`
	Go       string  `json:"go"`
	Commit   string  `json:"commit"`
	LoadAvg  float64 `json:"loadavg_at_start"`
}

// Settings are the knobs the run used.
type Settings struct {
	PayloadBytes  int           `json:"payload_bytes"`
	Writers       int           `json:"writers"`
	Window        int           `json:"window"`
	Rounds        int           `json:"rounds"`
	WriterWindow  time.Duration `json:"writer_window_ns"`
	LatencyWindow time.Duration `json:"latency_window_ns"`
	LatencyRates  []float64     `json:"latency_rates"`
	// LatencyTx, when set, is the fixed size of the latency runs'
	// transactions (else a free writer commits every event due, up to 100).
	LatencyTx      int               `json:"latency_tx,omitempty"`
	StageRates     []float64         `json:"stage_rates"`
	SustainWindow  time.Duration     `json:"sustain_window_ns"`
	Backlog        int64             `json:"backlog"`
	SharedBacklog  int64             `json:"shared_backlog"`
	ForeignRate    float64           `json:"foreign_rate"`
	Failovers      int               `json:"failovers"`
	FailoverRate   float64           `json:"failover_rate"`
	AtomicRate     float64           `json:"atomic_rate,omitempty"`
	AtomicBatches  []int             `json:"atomic_batches,omitempty"`
	AtomicBacklog  int64             `json:"atomic_backlog,omitempty"`
	PostgresConfig map[string]string `json:"postgres_config"`
}

// Cost is what a measured stretch of work cost, per 100,000 events.
type Cost struct {
	Events int64 `json:"events"`
	// CPU seconds per 100k events: all Postgres processes (backends,
	// walsender, background workers); the relay or poller processes; NATS.
	PGCPU       float64 `json:"pg_cpu_s"`
	ConsumerCPU float64 `json:"consumer_cpu_s"`
	NATSCPU     float64 `json:"nats_cpu_s"`
	// WalsenderCPU is the part of PGCPU spent decoding for cdcrelay;
	// BenchCPU the benchmark's own writers and consumer.
	WalsenderCPU float64 `json:"walsender_cpu_s"`
	BenchCPU     float64 `json:"bench_cpu_s"`
	// WALMB is megabytes of WAL per 100k events.
	WALMB float64 `json:"wal_mb"`
}

// Noise is how busy the machine was with others' work during a run, and
// what Postgres did in the background meanwhile.
type Noise struct {
	LoadAvg float64 `json:"loadavg"`
	// ForeignCores is the CPU (in cores) used by processes that are not
	// the benchmark's, averaged over the run.
	ForeignCores float64 `json:"foreign_cores"`
	// Checkpoints and Autovacuums (of bus.outbox, analyze included) that
	// ran during the run: each costs I/O, CPU and WAL the run did not ask for.
	Checkpoints int64 `json:"checkpoints"`
	Autovacuums int64 `json:"autovacuums"`
}

// IdleRun is what a system costs with nothing to do, in cores (CPU
// seconds per second).
type IdleRun struct {
	System    string  `json:"system"`
	Round     int     `json:"round"`
	PG        float64 `json:"pg_cores"`
	Walsender float64 `json:"walsender_cores"`
	Consumer  float64 `json:"consumer_cores"`
	NATS      float64 `json:"nats_cores"`
}

// WriterRun is writers going flat out through the outbox client.
type WriterRun struct {
	System string `json:"system"`
	Round  int    `json:"round"`
	// Batch is events per transaction (1: single-row).
	Batch        int     `json:"batch"`
	TxPerSec     float64 `json:"tx_per_s"`
	EventsPerSec float64 `json:"events_per_s"`
	// AckedPerSec is what reached JetStream while the writers wrote.
	AckedPerSec float64 `json:"acked_per_s"`
	LagFlat     bool    `json:"lag_flat"`
	// LagEnd is the lag in seconds of writing when the writers stopped;
	// Drain how long the consumer then took to catch up.
	LagEnd float64 `json:"lag_end_s"`
	Drain  float64 `json:"drain_s"`
	Cost   Cost    `json:"cost"`
	Noise  Noise   `json:"noise"`
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	N    uint64  `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

// LatencyRun is an open-loop run at a fixed offered rate.
type LatencyRun struct {
	System string  `json:"system"`
	Round  int     `json:"round"`
	Rate   float64 `json:"rate"`
	// CommitAck runs from the writer's commit returning to JetStream's
	// stored timestamp; CommitRecv to the consumer's receipt; IntendedRecv
	// from when the event was due, so writer queueing (the NOTIFY lock)
	// and commit time count.
	CommitAck    Percentiles `json:"commit_ack"`
	CommitRecv   Percentiles `json:"commit_recv"`
	IntendedRecv Percentiles `json:"intended_recv"`
	EventsPerTx  float64     `json:"events_per_tx"`
	// Behind: the writers could not keep the schedule. Lost: events written
	// but never received.
	Behind bool  `json:"behind"`
	Lost   int64 `json:"lost"`
	// Stages break commit → consumer receipt down, in the stage runs only.
	Stages []Stage `json:"stages,omitempty"`
	Cost   Cost    `json:"cost"`
	Noise  Noise   `json:"noise"`
}

// SustainProbe is one offered rate tried by the throughput search.
type SustainProbe struct {
	Rate        float64       `json:"rate"`
	Window      time.Duration `json:"window_ns"`
	Pass        bool          `json:"pass"`
	Why         string        `json:"why"`
	AckedPerSec float64       `json:"acked_per_s"`
	LagEnd      float64       `json:"lag_end_s"`
	Cost        Cost          `json:"cost"`
	Noise       Noise         `json:"noise"`
}

// SustainRun is the search for the highest rate with flat lag.
type SustainRun struct {
	System   string         `json:"system"`
	Estimate float64        `json:"estimate"`
	Probes   []SustainProbe `json:"probes"`
	// Best is the highest rate that passed the full window (0: none did).
	Best float64 `json:"best"`
	// PeakRSS is the consumer's VmHWM after the search, in bytes.
	PeakRSS int64 `json:"peak_rss"`
}

// CatchupRun is a backlog drained by a consumer started on it.
type CatchupRun struct {
	System string `json:"system"`
	Events int64  `json:"events"`
	// Total runs from starting the consumer to the last ack; Drain from
	// the first ack to the last; Flipped to the last flip committed.
	Total   float64 `json:"total_s"`
	Drain   float64 `json:"drain_s"`
	Flipped float64 `json:"flipped_s"`
	Rate    float64 `json:"events_per_s"`
	PeakRSS int64   `json:"peak_rss"`
	Cost    Cost    `json:"cost"`
	Noise   Noise   `json:"noise"`
}

// FailoverRun is SIGKILLs of the leader under load.
type FailoverRun struct {
	System string  `json:"system"`
	Rate   float64 `json:"rate"`
	// Gaps are seconds from each SIGKILL to the first receipt of an event
	// written after it.
	Gaps   []float64 `json:"gaps_s"`
	Median float64   `json:"median_s"`
	// Lost events were written but never received; Duplicates were
	// received twice (JetStream's dedup window should make both zero).
	Lost       int64 `json:"lost"`
	Duplicates int64 `json:"duplicates"`
}

// Read loads results written by Write.
func Read(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &r, nil
}

// Write stores the results as JSON at path.
func (r *Results) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
