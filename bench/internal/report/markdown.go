package report

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// systems are the columns of the main table.
func systems() []string { return []string{None, Relay, Poller} }

// Markdown renders the results table with the machine it ran on.
func (r *Results) Markdown(svgName string) string {
	var b strings.Builder
	kind := "full run"
	if r.Quick {
		kind = "quick run (smoke test: short windows, small counts)"
	}
	fmt.Fprintf(&b, "# cdcrelay vs the LISTEN/poll drain — %s\n\n", r.Started.Format("2006-01-02 15:04 MST"))
	m := r.Machine
	fmt.Fprintf(&b, "%s, %s. Machine: %s, %d cores, %.0f GiB, Linux %s, load %.2f at start. "+
		"PostgreSQL %s (fsync, synchronous_commit and full_page_writes on), NATS %s (own process, file store), %s; commit %s.\n\n",
		capitalize(kind), r.Duration.Round(time.Second), m.CPU, m.Cores, m.MemoryGB, m.Kernel, m.LoadAvg, m.Postgres, m.NATS, m.Go, m.Commit)
	st := r.Settings
	fmt.Fprintf(&b, "Everything shares the machine: Postgres, NATS, the system under test, and the benchmark's writers and consumer. "+
		"%d-byte payloads, %d writer connections, window %d events (cdcrelay --max-in-flight = poller batch). "+
		"Ranges are min–max over %d interleaved rounds; latencies are p50 / p99 / p99.9 / max in ms.\n\n",
		st.PayloadBytes, st.Writers, st.Window, st.Rounds)

	t := newTable("measurement", "no consumer", "cdcrelay", "poller", "cdcrelay target")
	r.idleRow(t)
	r.writerRows(t)
	r.sustainRows(t)
	r.latencyRows(t)
	r.stageRows(t)
	r.costRows(t)
	r.sharedRows(t)
	r.catchupRows(t)
	r.failoverRows(t)
	b.WriteString(t.String())
	b.WriteString(r.targets())
	b.WriteString(r.atomicSection())
	if svgName != "" {
		fmt.Fprintf(&b, "\n![latency percentiles vs offered rate](%s)\n", svgName)
	}
	b.WriteString(r.notes())
	return b.String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (r *Results) idleRow(t *table) {
	if len(r.Idle) == 0 {
		return
	}
	row := []string{"Idle: CPU used with nothing to publish (relay or poller + Postgres + NATS), cores", "–"}
	for _, sys := range []string{Relay, Poller} {
		var runs []IdleRun
		for _, i := range r.Idle {
			if i.System == sys {
				runs = append(runs, i)
			}
		}
		if len(runs) == 0 {
			row = append(row, "–")
			continue
		}
		row = append(row, span(pick(runs, func(i IdleRun) float64 { return i.Consumer + i.PG + i.NATS }), func(v float64) string { return fmt.Sprintf("%.3f", v) }))
	}
	t.row(append(row, "")...)
}

func (r *Results) writers(system string, batch int) []WriterRun {
	var out []WriterRun
	for _, w := range r.Writer {
		if w.System == system && w.Batch == batch {
			out = append(out, w)
		}
	}
	return out
}

func pick[T any](runs []T, f func(T) float64) []float64 {
	out := make([]float64, 0, len(runs))
	for _, x := range runs {
		out = append(out, f(x))
	}
	return out
}

func (r *Results) writerRows(t *table) {
	if len(r.Writer) == 0 {
		return
	}
	ceiling := median(pick(r.writers(None, 1), func(w WriterRun) float64 { return w.TxPerSec }))
	cells := func(batch int, f func(WriterRun) float64, format func(float64) string, flat bool) []string {
		var out []string
		for _, sys := range systems() {
			runs := r.writers(sys, batch)
			c := span(pick(runs, f), format)
			if flat && sys != None && len(runs) > 0 {
				n := 0
				for _, w := range runs {
					if w.LagFlat {
						n++
					}
				}
				c += fmt.Sprintf(" (lag flat %d/%d)", n, len(runs))
			}
			out = append(out, c)
		}
		return out
	}
	t.row(append(append([]string{"Writers, single-row tx/s"}, cells(1, func(w WriterRun) float64 { return w.TxPerSec }, kilo, true)...), "≥ 70 % of no consumer, lag flat")...)
	if ceiling > 0 {
		t.row(append(append([]string{"… as share of no consumer (median)"}, cells(1, func(w WriterRun) float64 { return 100 * w.TxPerSec / ceiling }, pct, false)...), "≥ 70 %")...)
	}
	t.row(append(append([]string{"Writers, 100-event tx, events/s written"}, cells(100, func(w WriterRun) float64 { return w.EventsPerSec }, kilo, true)...), "")...)
	row := []string{"… reaching JetStream meanwhile, events/s", "–"}
	for _, sys := range []string{Relay, Poller} {
		row = append(row, span(pick(r.writers(sys, 100), func(w WriterRun) float64 { return w.AckedPerSec }), kilo))
	}
	t.row(append(row, "")...)
}

func (r *Results) sustainRows(t *table) {
	if len(r.Sustain) == 0 {
		return
	}
	row := []string{"Sustained, 100-event tx, lag flat for the window, events/s", "–"}
	for _, sys := range []string{Relay, Poller} {
		c := "–"
		for _, s := range r.Sustain {
			if s.System != sys {
				continue
			}
			if s.Best > 0 {
				c = kilo(s.Best)
			} else {
				c = "none passed"
			}
		}
		row = append(row, c)
	}
	t.row(append(row, "≥ 50 k")...)
}

func (r *Results) latencyRows(t *table) {
	rates := map[float64]bool{}
	for _, l := range r.Latency {
		rates[l.Rate] = true
	}
	var sorted []float64
	for rate := range rates {
		sorted = append(sorted, rate)
	}
	sort.Float64s(sorted)
	for _, rate := range sorted {
		for _, kind := range []struct {
			label  string
			get    func(LatencyRun) Percentiles
			target string
		}{
			{"commit → JetStream ack", func(l LatencyRun) Percentiles { return l.CommitAck }, ackTarget(rate)},
			{"commit → consumer receipt", func(l LatencyRun) Percentiles { return l.CommitRecv }, ""},
			{"due → consumer receipt (open loop, CO counted)", func(l LatencyRun) Percentiles { return l.IntendedRecv }, ""},
		} {
			row := []string{fmt.Sprintf("Latency at %s events/s%s: %s", kilo(rate), r.latencyTx(), kind.label), "–"}
			for _, sys := range []string{Relay, Poller} {
				row = append(row, latencyCell(r.latencyRuns(sys, rate), kind.get))
			}
			t.row(append(row, kind.target)...)
		}
		// How the writers formed transactions: with a free writer, a
		// system that slows commits gets fewer, larger ones, which cost
		// Postgres less at the same rate.
		row := []string{fmt.Sprintf("Latency at %s events/s%s: the writers' events per transaction", kilo(rate), r.latencyTx()), "–"}
		for _, sys := range []string{Relay, Poller} {
			row = append(row, span(pick(r.latencyRuns(sys, rate), func(l LatencyRun) float64 { return l.EventsPerTx }), num1))
		}
		t.row(append(row, "")...)
	}
}

func ackTarget(rate float64) string {
	switch rate {
	case 1000:
		return "p99 ≤ 3 ms"
	case 10000:
		return "p99 ≤ 20 ms"
	}
	return ""
}

func latencyCell(runs []LatencyRun, get func(LatencyRun) Percentiles) string {
	if len(runs) == 0 {
		return "–"
	}
	parts := []string{
		span(pick(runs, func(l LatencyRun) float64 { return get(l).P50 }), ms),
		span(pick(runs, func(l LatencyRun) float64 { return get(l).P99 }), ms),
		span(pick(runs, func(l LatencyRun) float64 { return get(l).P999 }), ms),
		span(pick(runs, func(l LatencyRun) float64 { return get(l).Max }), ms),
	}
	c := strings.Join(parts, " / ")
	for _, l := range runs {
		if l.Behind {
			c += " (writers fell behind)"
			break
		}
	}
	return c
}

// latencyRuns are one system's default latency runs at rate, a run per
// round.
func (r *Results) latencyRuns(system string, rate float64) []LatencyRun {
	var out []LatencyRun
	for _, l := range r.Latency {
		if l.System == system && l.Rate == rate {
			out = append(out, l)
		}
	}
	return out
}
