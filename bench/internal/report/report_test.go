package report

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func sample() *Results {
	r := &Results{Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Settings: Settings{Rounds: 2}}
	for _, sys := range []string{None, Relay, Poller} {
		for round := 1; round <= 2; round++ {
			r.Writer = append(r.Writer, WriterRun{System: sys, Round: round, Batch: 1, TxPerSec: 10000 + float64(round)*100, LagFlat: true, Cost: Cost{PGCPU: 5}})
		}
	}
	for _, sys := range []string{Relay, Poller} {
		for _, rate := range []float64{1000, 10000} {
			p := Percentiles{N: 1000, P50: 0.5, P99: 2, P999: 4, Max: 9}
			r.Latency = append(r.Latency, LatencyRun{System: sys, Round: 1, Rate: rate, CommitAck: p, CommitRecv: p, IntendedRecv: p})
		}
	}
	return r
}

func TestSpan(t *testing.T) {
	if got := span([]float64{10700, 13900}, kilo); got != "10.7 k–13.9 k" {
		t.Fatalf("span = %q", got)
	}
	if got := span([]float64{2, 2}, num); got != "2.00" {
		t.Fatalf("span of equal values = %q", got)
	}
	if got := span(nil, num); got != "–" {
		t.Fatalf("span of nothing = %q", got)
	}
}

func TestMarkdownHasRows(t *testing.T) {
	md := sample().Markdown("x.svg")
	for _, want := range []string{"Writers, single-row tx/s", "10.1 k–10.2 k (lag flat 2/2)", "Latency at 1.0 k events/s: commit → JetStream ack", "p99 ≤ 3 ms", "x.svg"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	svg := sample().SVG()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg not well-formed: %v", err)
		}
	}
	if !strings.Contains(svg, "<polyline") {
		t.Fatal("svg has no lines")
	}
}

func TestLatencyRowsSayHowTransactionsFormed(t *testing.T) {
	r := sample()
	for i := range r.Latency {
		r.Latency[i].EventsPerTx = 3.7
	}
	md := r.Markdown("x.svg")
	for _, want := range []string{"Latency at 10.0 k events/s: the writers' events per transaction | – | 3.7 | 3.7", "a free writer commits every event due"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	r.Settings.LatencyTx = 10
	md = r.Markdown("x.svg")
	for _, want := range []string{"Latency at 1.0 k events/s in 10-event tx: commit → JetStream ack", "transactions of 10 events are due on that schedule"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown of fixed transactions lacks %q:\n%s", want, md)
		}
	}
}
