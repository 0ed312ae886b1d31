// Command bench measures cdcrelay side by side with the LISTEN/poll drain it
// replaces (bench/poller), against real Postgres and real NATS on one
// machine: writer cost, sustained throughput, latency, database cost,
// catch-up and failover, the systems interleaved round by round, and
// cdcrelay's atomic mode beside its default. It prints a
// Markdown table and writes it, JSON and an SVG plot to bench/results.
//
//	go run ./bench/cmd/bench -relay-bin bin/cdcrelay [-quick]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/cdcrelay/cdcrelay/bench/internal/procfs"
	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

func main() {
	if len(os.Args) > 1 {
		var mode func([]string) error
		switch os.Args[1] {
		case "poller":
			mode = pollerMain
		case "nats":
			mode = natsMain
		}
		if mode != nil {
			if err := mode(os.Args[2:]); err != nil {
				fmt.Fprintf(os.Stderr, "bench %s: %v\n", os.Args[1], err)
				os.Exit(1)
			}
			return
		}
	}
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	if o.render != "" {
		if err := render(o.render); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) error {
	if l, err := procfs.LoadAvg(); err == nil && l > 1 {
		fmt.Fprintf(os.Stderr, "warning: load average %.2f: the machine is busy, numbers will be noisy\n", l)
	}
	e, err := setup(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	res := &report.Results{Started: e.start, Quick: o.quick, Machine: e.machine(ctx), Settings: report.Settings{
		PayloadBytes: o.payload, Writers: o.writers, Window: o.window, Rounds: o.rounds,
		WriterWindow: o.writerDur, LatencyWindow: o.latencyDur, LatencyTx: o.latencyTx, LatencyRates: o.latencyRates, StageRates: o.stageRates,
		SustainWindow: o.sustainWindow, Backlog: o.backlog, SharedBacklog: o.sharedBacklog, ForeignRate: o.foreignRate, Failovers: o.failovers, FailoverRate: o.failoverRate,
		AtomicRate: o.atomicRate, AtomicBatches: o.atomicBatches, AtomicBacklog: o.atomicBacklog,
		PostgresConfig: pgSettings(),
	}}
	res.Machine.LoadAvg, _ = procfs.LoadAvg()
	e.logf("postgres %s, nats %s, work dir %s", res.Machine.Postgres, res.Machine.NATS, e.work)

	var systems []system
	for _, name := range o.systems {
		switch name {
		case report.Relay:
			if _, err := os.Stat(o.relayBin); err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("cdcrelay: no relay binary at %s (make build): %v", o.relayBin, err))
				continue
			}
			systems = append(systems, &relaySystem{bin: o.relayBin, extra: strings.Fields(o.relayArgs), env: e})
		case report.Poller:
			systems = append(systems, &pollerSystem{env: e})
		}
	}
	e.runRounds(ctx, res, systems)
	e.runAtomic(ctx, res, systems)
	e.runHeavy(ctx, res, systems)
	e.keep = len(res.Errors) > 0
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res.Duration = time.Since(e.start)
	return write(o, res)
}

// runRounds interleaves the systems, rotating who goes first, for the
// writer and latency runs.
func (e *env) runRounds(ctx context.Context, res *report.Results, systems []system) {
	o := e.o
	if !o.only["writer"] && !o.only["latency"] {
		return
	}
	all := systems
	if o.only["writer"] {
		all = append([]system{&noConsumer{}}, systems...)
	}
	e.interleave(ctx, res, "", all, func(s *session, round int) error {
		if s.sys.consumes() {
			idle, err := s.runIdle(ctx, round, o.idleDur)
			if err != nil {
				return fmt.Errorf("idle: %w", err)
			}
			res.Idle = append(res.Idle, idle)
		}
		if o.only["writer"] {
			for _, batch := range []int{1, 100} {
				w, err := s.runWriter(ctx, round, batch)
				if err != nil {
					return fmt.Errorf("writer batch %d: %w", batch, err)
				}
				res.Writer = append(res.Writer, w)
			}
		}
		if o.only["latency"] && s.sys.consumes() {
			for _, rate := range o.latencyRates {
				l, err := s.runLatency(ctx, round, rate, o.latencyTx, false)
				if err != nil {
					return fmt.Errorf("latency at %.0f/s: %w", rate, err)
				}
				res.Latency = append(res.Latency, l)
			}
		}
		return nil
	})
}

// interleave runs f on a fresh session of each system, round by round,
// rotating who goes first; a round that fails is recorded as what (a
// prefix of "round") and the others go on.
func (e *env) interleave(ctx context.Context, res *report.Results, what string, systems []system, f func(s *session, round int) error) {
	for round := 1; round <= e.o.rounds; round++ {
		for i := range systems {
			sys := systems[(i+round-1)%len(systems)]
			e.logf("%sround %d/%d: %s", what, round, e.o.rounds, sys.name())
			err := e.inSession(ctx, sys, func(s *session) error { return f(s, round) })
			if err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("%s %sround %d: %v", sys.name(), what, round, err))
				e.logf("%s %sround %d: %v", sys.name(), what, round, err)
			}
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// runHeavy runs the once-per-system measurements: the throughput search,
// the backlog and the failovers, the systems taking turns.
func (e *env) runHeavy(ctx context.Context, res *report.Results, systems []system) {
	o := e.o
	for _, m := range []string{"stages", "sustain", "shared", "catchup", "failover"} {
		for _, sys := range systems {
			if !o.only[m] || ctx.Err() != nil || (m == "stages" && sys.name() != report.Relay) {
				continue
			}
			e.logf("%s: %s", m, sys.name())
			run := sys
			if r, ok := sys.(*relaySystem); ok && m == "stages" {
				run = r.diagnosticTwin()
			}
			// A session each: the catch-up's backlog and bloat must not
			// weigh on the failovers, nor the search's on the backlog.
			err := e.inSession(ctx, run, func(s *session) error {
				switch m {
				case "sustain":
					est := estimate(res, sys.name())
					if o.sustainStart > 0 {
						est = o.sustainStart / 0.9
					}
					r, err := s.runSustain(ctx, est)
					res.Sustain = append(res.Sustain, r)
					return err
				case "stages":
					r, err := s.runStages(ctx)
					res.StageRuns = append(res.StageRuns, r...)
					return err
				case "shared":
					r, err := s.runShared(ctx)
					if err == nil {
						res.Shared = append(res.Shared, r)
					}
					return err
				case "catchup":
					r, err := s.runCatchup(ctx)
					if err == nil {
						res.Catchup = append(res.Catchup, r)
					}
					return err
				default:
					r, err := s.runFailover(ctx)
					if err == nil {
						res.Failover = append(res.Failover, r)
					}
					return err
				}
			})
			if err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("%s %s: %v", sys.name(), m, err))
				e.logf("%s %s: %v", sys.name(), m, err)
			}
		}
	}
}

// estimate starts the throughput search at what reached JetStream while
// 100-event writers ran flat out.
func estimate(res *report.Results, system string) float64 {
	best := 0.0
	for _, w := range res.Writer {
		if w.System == system && w.Batch == 100 {
			best = max(best, min(w.AckedPerSec, w.EventsPerSec))
		}
	}
	if best == 0 {
		return 20000
	}
	return best
}

// inSession runs f on a fresh session with one replica leading.
func (e *env) inSession(ctx context.Context, sys system, f func(*session) error) error {
	s, err := e.newSession(ctx, sys)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	if sys.consumes() {
		if _, err := sys.start(ctx, s, true); err != nil {
			return err
		}
	}
	return f(s)
}

// render rewrites the Markdown and SVG beside an earlier run's JSON.
func render(jsonPath string) error {
	res, err := report.Read(jsonPath)
	if err != nil {
		return err
	}
	dir, name := filepath.Split(jsonPath)
	return writeFiles(dir, strings.TrimSuffix(name, ".json"), res, false)
}

func write(o *options, res *report.Results) error {
	stamp := res.Started.Format("2006-01-02")
	if o.quick {
		stamp += "-quick"
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	return writeFiles(o.out, stamp, res, true)
}

func writeFiles(dir, stamp string, res *report.Results, withJSON bool) error {
	base := filepath.Join(dir, stamp)
	svg := res.SVG()
	svgName := ""
	if svg != "" {
		svgName = stamp + ".svg"
		if err := os.WriteFile(base+".svg", []byte(svg), 0o644); err != nil {
			return err
		}
	}
	md := res.Markdown(svgName)
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		return err
	}
	if withJSON {
		if err := res.Write(base + ".json"); err != nil {
			return err
		}
	}
	fmt.Println(md)
	fmt.Fprintf(os.Stderr, "wrote %s.{md,json,svg} in %v (%s)\n", base, res.Duration.Round(time.Second), runtime.Version())
	return nil
}
