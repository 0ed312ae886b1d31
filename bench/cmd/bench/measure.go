package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cdcrelay/cdcrelay/bench/internal/procfs"
	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

// meter is a reading of every counter a run's cost is computed from.
type meter struct {
	at      time.Time
	snap    procfs.Snapshot
	machine procfs.Machine
	wal     int64
	load    float64
	// walsenders are the pids serving replication connections.
	walsenders []int
	// checkpoints and autovacuums are Postgres's running counts.
	checkpoints, autovacuums int64
}

func (s *session) meter(ctx context.Context) (meter, error) {
	m, err := s.env.meter()
	if err != nil {
		return m, err
	}
	if m.wal, err = s.walLSN(ctx); err != nil {
		return m, fmt.Errorf("read WAL position: %w", err)
	}
	var version int
	if err := s.q.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return m, fmt.Errorf("read server version: %w", err)
	}
	// PostgreSQL 17 moved the checkpoint counts to pg_stat_checkpointer.
	checkpoints := `SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter`
	if version >= 170000 {
		checkpoints = `SELECT num_timed + num_requested FROM pg_stat_checkpointer`
	}
	if err := s.q.QueryRow(ctx, `SELECT (`+checkpoints+`),
  coalesce((SELECT autovacuum_count + autoanalyze_count FROM pg_stat_user_tables WHERE relid = 'bus.outbox'::regclass), 0)`).Scan(&m.checkpoints, &m.autovacuums); err != nil {
		return m, fmt.Errorf("read background activity: %w", err)
	}
	rows, err := s.q.Query(ctx, `SELECT pid FROM pg_stat_replication`)
	if err != nil {
		return m, fmt.Errorf("list walsenders: %w", err)
	}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return m, err
		}
		m.walsenders = append(m.walsenders, pid)
	}
	return m, rows.Err()
}

func (e *env) meter() (meter, error) {
	m := meter{at: time.Now()}
	var err error
	if m.snap, err = procfs.Take(); err != nil {
		return m, err
	}
	if m.machine, err = procfs.ReadMachine(); err != nil {
		return m, err
	}
	m.load, _ = procfs.LoadAvg()
	return m, nil
}

// ours is the CPU of everything the benchmark runs: itself and its
// children (NATS, relays, pollers, reaped ones included), and Postgres.
func (e *env) ours(m meter) time.Duration {
	return m.snap.TreeCPU(os.Getpid()) + m.snap.TreeCPU(e.postmaster)
}

// noise is how much CPU others used between two readings.
func (e *env) noise(a, b meter) report.Noise {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return report.Noise{LoadAvg: a.load}
	}
	foreign := (b.machine.Busy - a.machine.Busy) - (e.ours(b) - e.ours(a))
	return report.Noise{
		LoadAvg: a.load, ForeignCores: max(foreign.Seconds(), 0) / wall,
		Checkpoints: b.checkpoints - a.checkpoints, Autovacuums: b.autovacuums - a.autovacuums,
	}
}

// cost is what the events between two readings cost, per 100k events.
func (s *session) cost(a, b meter, events int64) report.Cost {
	c := report.Cost{Events: events}
	if events <= 0 {
		return c
	}
	per := 1e5 / float64(events)
	pg := b.snap.TreeCPU(s.env.postmaster) - a.snap.TreeCPU(s.env.postmaster)
	var consumer time.Duration
	for _, p := range s.sys.replicas() {
		consumer += b.snap.TreeCPU(p.PID()) - a.snap.TreeCPU(p.PID())
	}
	natsPID := s.env.natsProc.PID()
	nats := b.snap.TreeCPU(natsPID) - a.snap.TreeCPU(natsPID)
	c.PGCPU = pg.Seconds() * per
	c.ConsumerCPU = consumer.Seconds() * per
	c.NATSCPU = nats.Seconds() * per
	var ws time.Duration
	for _, pid := range b.walsenders {
		// A walsender started since a counts from zero (CPU of a pid
		// missing from a snapshot reads as zero).
		ws += b.snap.CPU(pid) - a.snap.CPU(pid)
	}
	c.WalsenderCPU = ws.Seconds() * per
	self := os.Getpid()
	c.BenchCPU = (b.snap.CPU(self) - a.snap.CPU(self)).Seconds() * per
	c.WALMB = float64(b.wal-a.wal) / (1 << 20) * per
	return c
}

// waitQuiet holds a run back while others keep the machine busy: up to
// 15 s per run and quiet-budget for the whole benchmark. A shared machine
// may never be quiet, and each run's noise is recorded anyway.
func (e *env) waitQuiet(ctx context.Context) error {
	waited := time.Duration(0)
	for {
		a, err := e.meter()
		if err != nil {
			return err
		}
		if err := sleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
		b, err := e.meter()
		if err != nil {
			return err
		}
		n := e.noise(a, b)
		if n.ForeignCores <= e.o.maxForeign {
			return nil
		}
		if e.quietBudget <= 0 || waited >= 15*time.Second {
			e.logf("machine busy (others use %.2f cores, load %.2f); running anyway", n.ForeignCores, n.LoadAvg)
			return nil
		}
		if waited == 0 {
			e.logf("machine busy (others use %.2f cores, load %.2f); waiting", n.ForeignCores, n.LoadAvg)
		}
		e.quietBudget -= 3 * time.Second
		waited += 3 * time.Second
		if err := sleep(ctx, 3*time.Second); err != nil {
			return err
		}
	}
}

func readTail(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		if _, err := f.Seek(-n, io.SeekEnd); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(f)
	return string(b), err
}
