package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/bench/internal/report"
	"github.com/cdcrelay/cdcrelay/bench/internal/sut"
	"github.com/cdcrelay/cdcrelay/internal/pgcluster"
	"github.com/cdcrelay/cdcrelay/migrations"
)

// pgSettings make the throwaway cluster durable like a default production
// one (the test harness turns fsync off); the targets were measured on a
// default-configured Postgres 15.
func pgSettings() map[string]string {
	return map[string]string{
		"fsync":              "on",
		"full_page_writes":   "on",
		"synchronous_commit": "on",
		"wal_sender_timeout": "60s",
		"log_min_messages":   "warning",
	}
}

const templateDB = "bench_template"

// env is what every measurement shares: one Postgres cluster, one NATS
// server process, and a migrated template database each session copies.
type env struct {
	o          *options
	start      time.Time
	work       string
	ownsWork   bool
	self       string
	pg         *pgcluster.Cluster
	postmaster int
	natsProc   *sut.Proc
	natsURL    string
	nc         *nats.Conn
	js         jetstream.JetStream
	admin      *pgx.Conn
	sessions   int
	// quietBudget is how long runs may still wait for others' load to pass.
	quietBudget time.Duration
	// keep leaves the work directory (logs) behind for a run that failed.
	keep bool
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, args...))
}

func setup(ctx context.Context, o *options) (_ *env, err error) {
	e := &env{o: o, start: time.Now(), work: o.workDir, quietBudget: o.quietBudget}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.self, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	if e.work == "" {
		if e.work, err = os.MkdirTemp("", "cdcrelay-bench-"); err != nil {
			return nil, err
		}
		e.ownsWork = true
	} else if err = os.MkdirAll(e.work, 0o755); err != nil {
		return nil, err
	}
	if e.pg, err = pgcluster.Start(ctx, pgcluster.Options{Bin: o.pgBin, Settings: pgSettings()}); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if e.postmaster, err = readPostmasterPID(e.pg.DataDir()); err != nil {
		return nil, err
	}
	if e.admin, err = pgx.Connect(ctx, e.pg.URL("postgres")); err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if _, err = e.admin.Exec(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return nil, fmt.Errorf("create template database: %w", err)
	}
	tmpl, err := pgx.Connect(ctx, e.pg.URL(templateDB))
	if err != nil {
		return nil, err
	}
	_, err = migrations.Apply(ctx, tmpl)
	tmpl.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate template database: %w", err)
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	storeDir := filepath.Join(e.work, "jetstream")
	args := []string{"nats", "-store", storeDir, "-port", strconv.Itoa(port)}
	if o.profileDir != "" {
		args = append(args, "-cpuprofile", filepath.Join(o.profileDir, "nats.pprof"))
	}
	if e.natsProc, err = sut.Start("nats", e.self, args, e.work); err != nil {
		return nil, err
	}
	if _, err = e.natsProc.WaitLine(ctx, "ready", 0, 30*time.Second); err != nil {
		return nil, err
	}
	e.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	if e.nc, err = nats.Connect(e.natsURL, nats.MaxReconnects(-1)); err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if e.nc != nil {
		e.nc.Close()
	}
	if e.natsProc != nil {
		_ = e.natsProc.Stop(10 * time.Second)
	}
	if e.admin != nil {
		e.admin.Close(context.Background())
	}
	if e.pg != nil {
		if err := e.pg.Stop(); err != nil {
			e.logf("stop postgres: %v", err)
		}
	}
	if e.ownsWork && !e.keep {
		_ = os.RemoveAll(e.work)
	} else if e.keep {
		fmt.Fprintf(os.Stderr, "logs kept in %s\n", e.work)
	}
}

func readPostmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	return pid, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// machine describes the box for the report.
func (e *env) machine(ctx context.Context) report.Machine {
	m := report.Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			m.MemoryGB = kb / (1 << 20)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	_ = e.admin.QueryRow(ctx, "SHOW server_version").Scan(&m.Postgres)
	m.NATS = e.nc.ConnectedServerVersion()
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// checkpoint flushes dirty pages so each run starts from the same state:
// the first change to a page after a checkpoint writes the whole page to WAL.
func (e *env) checkpoint(ctx context.Context) error {
	if _, err := e.admin.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}
