package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cdcrelay/cdcrelay/publish"
)

// options are the command-line flags; -quick changes the defaults of the
// flags not given explicitly.
type options struct {
	relayBin  string
	relayArgs string
	pgBin     string
	quick     bool
	out       string
	workDir   string
	systems   []string
	only      map[string]bool

	payload   int
	writers   int
	window    int
	rounds    int
	writerDur time.Duration
	idleDur   time.Duration

	latencyRates []float64
	latencyDur   time.Duration
	latencyTx    int
	stageRates   []float64

	sustainProbes int
	sustainStart  float64
	sustainProbe  time.Duration
	sustainWindow time.Duration

	backlog int64
	// sharedBacklog is the backlog drained alone and beside a foreign
	// publisher at foreignRate messages/s.
	sharedBacklog int64
	foreignRate   float64
	failovers     int
	failoverRate  float64

	// atomicRate, atomicBatches and atomicBacklog shape the runs of
	// cdcrelay in atomic mode beside the default (runAtomic).
	atomicRate    float64
	atomicBatches []int
	atomicBacklog int64

	render      string
	maxForeign  float64
	quietBudget time.Duration
	profileDir  string
}

// measurements are every measurement, in the order they run.
const measurements = "writer,latency,atomic,stages,sustain,shared,catchup,failover"

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.relayBin, "relay-bin", "bin/cdcrelay", "cdcrelay binary (make build)")
	fs.StringVar(&o.relayArgs, "relay-args", "", "extra arguments for `cdcrelay run`, space-separated")
	fs.StringVar(&o.pgBin, "pg-bin", "", "PostgreSQL server binaries (default: pg_ctl on PATH, else the newest /usr/lib/postgresql/*/bin); the origin filter needs 16+, e.g. a directory that scripts/ensure-pg-versions.sh prints")
	fs.BoolVar(&o.quick, "quick", false, "a smoke run of about two minutes")
	fs.StringVar(&o.out, "out", "bench/results", "directory for <date>.md, .json and .svg")
	fs.StringVar(&o.workDir, "work", "", "keep logs and data here (default: a temporary directory, removed)")
	systems := fs.String("systems", "cdcrelay,poller", "systems to compare (cdcrelay, poller); writer runs add 'none'")
	only := fs.String("only", measurements, "measurements to run")
	fs.IntVar(&o.payload, "payload", 256, "payload bytes per event")
	fs.IntVar(&o.writers, "writers", 8, "writer connections")
	fs.IntVar(&o.window, "window", publish.DefaultMaxInFlight, "events in flight: cdcrelay --max-in-flight and the poller's batch")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds of writer and latency runs, systems interleaved")
	fs.DurationVar(&o.idleDur, "idle-duration", 3*time.Second, "how long each system's idle CPU is measured")
	fs.DurationVar(&o.writerDur, "writer-duration", 5*time.Second, "each writer-cost run")
	rates := fs.String("latency-rates", "1000,10000,20000", "offered rates of the latency runs, events/s")
	stageRates := fs.String("stage-rates", "1000,10000", "offered rates of cdcrelay's per-stage runs, events/s")
	fs.DurationVar(&o.latencyDur, "latency-duration", 8*time.Second, "each latency run")
	fs.IntVar(&o.latencyTx, "latency-tx", 0, "latency runs commit transactions of this many events, the same for every system (default: a free writer commits every event due, up to 100)")
	fs.IntVar(&o.sustainProbes, "sustain-probes", 3, "short probes of the throughput search")
	fs.Float64Var(&o.sustainStart, "sustain-start", 0, "first rate of the throughput search (default: 90 % of the drain rate seen in the writer runs)")
	fs.DurationVar(&o.sustainProbe, "sustain-probe", 6*time.Second, "each probe")
	fs.DurationVar(&o.sustainWindow, "sustain-window", 30*time.Second, "the window the best rate must hold lag flat for")
	fs.Int64Var(&o.backlog, "backlog", 1_000_000, "events in the catch-up backlog")
	fs.Int64Var(&o.sharedBacklog, "shared-backlog", 200_000, "events in each backlog of the shared-stream drain")
	fs.Float64Var(&o.foreignRate, "foreign-rate", 1000, "messages/s of the foreign publisher in the shared-stream drain")
	fs.IntVar(&o.failovers, "failovers", 5, "leader kills per system")
	fs.Float64Var(&o.failoverRate, "failover-rate", 2000, "offered rate during failovers, events/s")
	fs.Float64Var(&o.atomicRate, "atomic-rate", 5000, "offered rate of the latency runs of cdcrelay's atomic and default modes, events/s")
	atomicBatches := fs.String("atomic-batches", "10,100", "events per transaction in the runs of cdcrelay's atomic and default modes")
	fs.Int64Var(&o.atomicBacklog, "atomic-backlog", 200_000, "events in each backlog drained by cdcrelay's atomic and default modes")
	fs.Float64Var(&o.maxForeign, "max-foreign", 0.3, "wait before a run while others use more than this many cores")
	fs.DurationVar(&o.quietBudget, "quiet-budget", 30*time.Second, "the most the whole run waits for a quiet machine")
	fs.StringVar(&o.render, "render", "", "only render the Markdown and SVG of an earlier run's JSON file")
	fs.StringVar(&o.profileDir, "profile", "", "write CPU profiles of the poller replicas and the NATS server here")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]string{
			"rounds": "1", "writer-duration": "2s", "latency-rates": "1000,10000", "stage-rates": "1000", "latency-duration": "3s",
			"sustain-probes": "2", "sustain-probe": "3s", "sustain-window": "4s",
			"backlog": "100000", "shared-backlog": "40000", "failovers": "2", "quiet-budget": "5s", "idle-duration": "1s",
			"atomic-backlog": "30000",
		}
		for name, v := range quick {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return nil, err
				}
			}
		}
	}
	var err error
	if o.latencyRates, err = parseRates("latency-rates", *rates); err != nil {
		return nil, err
	}
	if o.stageRates, err = parseRates("stage-rates", *stageRates); err != nil {
		return nil, err
	}
	for _, f := range splitList(*atomicBatches) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-atomic-batches: bad transaction size %q", f)
		}
		o.atomicBatches = append(o.atomicBatches, n)
	}
	o.systems = splitList(*systems)
	for _, s := range o.systems {
		if s != "cdcrelay" && s != "poller" {
			return nil, fmt.Errorf("-systems: unknown system %q", s)
		}
	}
	o.only = map[string]bool{}
	for _, m := range splitList(*only) {
		o.only[m] = true
	}
	if o.payload < 20 {
		return nil, fmt.Errorf("-payload %d: at least 20 bytes carry the sequence number and send time", o.payload)
	}
	return o, nil
}

func parseRates(name, s string) ([]float64, error) {
	var out []float64
	for _, f := range splitList(s) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("-%s: bad rate %q", name, f)
		}
		out = append(out, v)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
