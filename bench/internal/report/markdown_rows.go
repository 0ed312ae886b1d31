package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

func (r *Results) costRows(t *table) {
	if len(r.Writer) == 0 && len(r.Latency) == 0 {
		return
	}
	writerCost := func(label string, batch int, f func(Cost) float64, target string) {
		row := []string{label}
		for _, sys := range systems() {
			if sys == None && consumerOnly(label) {
				row = append(row, "–")
				continue
			}
			row = append(row, span(pick(r.writers(sys, batch), func(w WriterRun) float64 { return f(w.Cost) }), num))
		}
		t.row(append(row, target)...)
	}
	pg := func(c Cost) float64 { return c.PGCPU }
	writerCost("Postgres CPU s / 100k events, single-row writers flat out", 1, pg, "≤ ⅓ of the poller's")
	r.marginalRow(t, 1)
	writerCost("Postgres CPU s / 100k events, 100-event writers flat out", 100, pg, "")
	r.marginalRow(t, 100)
	if rate, runs := r.costLatencyRuns(); len(runs) > 0 {
		row := []string{fmt.Sprintf("Postgres CPU s / 100k events, open loop at %s events/s", kilo(rate)), "–"}
		for _, sys := range []string{Relay, Poller} {
			var vals []float64
			for _, l := range runs {
				if l.System == sys {
					vals = append(vals, l.Cost.PGCPU)
				}
			}
			row = append(row, span(vals, num))
		}
		t.row(append(row, "")...)
	}
	writerCost("WAL MB / 100k events, single-row writers", 1, func(c Cost) float64 { return c.WALMB }, "")
	writerCost("WAL MB / 100k events, 100-event writers", 100, func(c Cost) float64 { return c.WALMB }, "")
	writerCost("Relay / poller process CPU s / 100k events, 100-event writers", 100, func(c Cost) float64 { return c.ConsumerCPU }, "")
	writerCost("NATS server CPU s / 100k events, 100-event writers", 100, func(c Cost) float64 { return c.NATSCPU }, "")
	r.latencyCPURows(t)
	row := []string{"Peak RSS of one replica (VmHWM) after full-speed runs", "–"}
	for _, sys := range []string{Relay, Poller} {
		var vals []float64
		for _, s := range r.Sustain {
			if s.System == sys && s.PeakRSS > 0 {
				vals = append(vals, float64(s.PeakRSS))
			}
		}
		for _, c := range r.Catchup {
			if c.System == sys && c.PeakRSS > 0 {
				vals = append(vals, float64(c.PeakRSS))
			}
		}
		c := "–"
		if len(vals) > 0 {
			c = mib(slices.Max(vals))
		}
		row = append(row, c)
	}
	t.row(append(row, "≤ 100 MiB")...)
}

// consumerOnly tells the rows that mean nothing without a consumer.
func consumerOnly(label string) bool {
	return strings.HasPrefix(label, "Relay") || strings.HasPrefix(label, "NATS")
}

// marginalRow is what the consumer adds to Postgres's CPU per event above
// the writers' own cost (medians).
func (r *Results) marginalRow(t *table, batch int) {
	base := median(pick(r.writers(None, batch), func(w WriterRun) float64 { return w.Cost.PGCPU }))
	row := []string{"… above no consumer (medians): the consumer's cost to Postgres", "–"}
	for _, sys := range []string{Relay, Poller} {
		v := median(pick(r.writers(sys, batch), func(w WriterRun) float64 { return w.Cost.PGCPU }))
		if math.IsNaN(v) || math.IsNaN(base) {
			row = append(row, "–")
			continue
		}
		row = append(row, num(v-base))
	}
	t.row(append(row, "")...)
}

// latencyCPURows give the relay's (or poller's) CPU per event in each open
// loop run: at a low rate it is mostly the cost of waking up per event.
func (r *Results) latencyCPURows(t *table) {
	for _, rate := range r.latencyRates() {
		row := []string{fmt.Sprintf("Relay / poller process CPU µs per event, open loop at %s events/s", kilo(rate)), "–"}
		for _, sys := range []string{Relay, Poller} {
			row = append(row, span(r.latencyCPU(sys, rate), num))
		}
		target := ""
		if rate == 1000 {
			target = "≤ 50 µs"
		}
		t.row(append(row, target)...)
	}
}

func (r *Results) latencyRates() []float64 {
	var rates []float64
	for _, l := range r.Latency {
		if !slices.Contains(rates, l.Rate) {
			rates = append(rates, l.Rate)
		}
	}
	slices.Sort(rates)
	return rates
}

// latencyCPU is sys's CPU per event (µs) in each latency run at rate.
func (r *Results) latencyCPU(sys string, rate float64) []float64 {
	var vals []float64
	for _, l := range r.Latency {
		if l.System == sys && l.Rate == rate && l.Cost.Events > 0 {
			vals = append(vals, l.Cost.ConsumerCPU*10) // s per 100k events = 10 µs per event
		}
	}
	return vals
}

// costLatencyRuns are the latency runs at 10k/s, else at the highest rate.
func (r *Results) costLatencyRuns() (float64, []LatencyRun) {
	var rate float64
	for _, l := range r.Latency {
		if l.Rate == 10000 || (rate != 10000 && l.Rate > rate) {
			rate = l.Rate
		}
	}
	var out []LatencyRun
	for _, l := range r.Latency {
		if l.Rate == rate {
			out = append(out, l)
		}
	}
	return rate, out
}

func (r *Results) catchupRows(t *table) {
	if len(r.Catchup) == 0 {
		return
	}
	events := r.Catchup[0].Events
	row := []string{fmt.Sprintf("Catch-up of a %s-event backlog: start → last ack (drain rate)", kilo(float64(events))), "–"}
	flip := []string{"… start → last row flipped", "–"}
	for _, sys := range []string{Relay, Poller} {
		var runs []CatchupRun
		for _, c := range r.Catchup {
			if c.System == sys {
				runs = append(runs, c)
			}
		}
		if len(runs) == 0 {
			row, flip = append(row, "–"), append(flip, "–")
			continue
		}
		row = append(row, fmt.Sprintf("%s (%s/s)", span(pick(runs, func(c CatchupRun) float64 { return c.Total }), secs),
			span(pick(runs, func(c CatchupRun) float64 { return c.Rate }), kilo)))
		flip = append(flip, span(pick(runs, func(c CatchupRun) float64 { return c.Flipped }), secs))
	}
	target := ""
	if events == 1_000_000 {
		target = "≤ 10 s (≥ 100 k/s)"
	}
	t.row(append(row, target)...)
	t.row(append(flip, "")...)
}

func (r *Results) failoverRows(t *table) {
	if len(r.Failover) == 0 {
		return
	}
	row := []string{fmt.Sprintf("Failover, SIGKILL of the leader at %s events/s: gap median (min–max), lost", kilo(r.Failover[0].Rate)), "–"}
	for _, sys := range []string{Relay, Poller} {
		c := "–"
		for _, f := range r.Failover {
			if f.System == sys && len(f.Gaps) > 0 {
				c = fmt.Sprintf("%s (%s), %d lost", secs(f.Median), span(f.Gaps, secs), f.Lost)
			}
		}
		row = append(row, c)
	}
	t.row(append(row, "a few seconds")...)
}

func (r *Results) notes() string {
	var b strings.Builder
	b.WriteString("\nHow to read it:\n\n")
	for _, n := range []string{
		"Writers use the outbox client (outbox.Publish, outbox.PublishBatch) on 8 connections, each statement its own transaction. The poller's runs carry its AFTER INSERT NOTIFY trigger and its partial index of unpublished rows; cdcrelay's and the no-consumer runs do not.",
		"\"Lag flat\": between the second and the last quarter of the window the backlog (written, not yet in JetStream) grew by less than 5 % of the write rate; the sustained search also requires the writers to keep the schedule and the lag to end under 1 s.",
		"Latency runs are open loop: events are due at fixed intervals by the wall clock, and " + r.latencyShape() + ". \"commit\" is when the writer's commit returned; \"ack\" is JetStream's stored timestamp of the message (same clock); \"due\" is when the schedule wanted the event written, so time spent waiting for a writer counts.",
		"CPU is utime+stime from /proc: Postgres counts every process of the cluster (backends, walsender, background workers, exited ones through the postmaster); it includes the writers' own inserts, hence the row above no consumer.",
	} {
		b.WriteString("- " + n + "\n")
	}
	var noisy, background []string
	note := func(what string, n Noise) {
		if n.ForeignCores > 0.3 {
			noisy = append(noisy, fmt.Sprintf("%s (others used %.2f cores)", what, n.ForeignCores))
		}
		if n.Checkpoints > 0 || n.Autovacuums > 0 {
			background = append(background, fmt.Sprintf("%s (%d checkpoints, %d autovacuums)", what, n.Checkpoints, n.Autovacuums))
		}
	}
	for _, w := range r.Writer {
		note(fmt.Sprintf("writer %s batch %d round %d", w.System, w.Batch, w.Round), w.Noise)
	}
	for _, l := range r.Latency {
		note(fmt.Sprintf("latency %s %s/s round %d", l.System, kilo(l.Rate), l.Round), l.Noise)
	}
	for _, s := range r.Sustain {
		for _, p := range s.Probes {
			note(fmt.Sprintf("sustain %s %s/s", s.System, kilo(p.Rate)), p.Noise)
		}
	}
	for _, c := range r.Catchup {
		note("catch-up "+c.System, c.Noise)
	}
	for _, a := range r.Atomic {
		note(fmt.Sprintf("latency %s %d-event tx round %d", a.System, a.Batch, a.Round), a.Latency.Noise)
		note(fmt.Sprintf("drain %s %d-event tx round %d", a.System, a.Batch, a.Round), a.Drain.Noise)
	}
	if len(noisy) > 0 {
		b.WriteString("\nRuns disturbed by other work on the machine: " + strings.Join(noisy, "; ") + ".\n")
	}
	if len(background) > 0 {
		b.WriteString("\nRuns during which Postgres checkpointed or autovacuumed the outbox: " + strings.Join(background, "; ") + ".\n")
	}
	if len(r.Errors) > 0 {
		b.WriteString("\nNot measured:\n\n")
		for _, e := range r.Errors {
			b.WriteString("- " + e + "\n")
		}
	}
	return b.String()
}

// latencyShape says how the latency runs' writers form transactions.
func (r *Results) latencyShape() string {
	if n := r.Settings.LatencyTx; n > 0 {
		return fmt.Sprintf("transactions of %d events are due on that schedule, the same for every system", n)
	}
	return "a free writer commits every event due (up to 100) in one transaction, so a system that slows commits down (the poller's NOTIFY lock) gets fewer, larger transactions"
}

// latencyTx labels latency rows of fixed-size transactions.
func (r *Results) latencyTx() string {
	if n := r.Settings.LatencyTx; n > 0 {
		return fmt.Sprintf(" in %d-event tx", n)
	}
	return ""
}
