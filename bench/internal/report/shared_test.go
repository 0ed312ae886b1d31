package report

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSharedRowAndTarget(t *testing.T) {
	r := sample()
	run := SharedRun{System: Relay, Events: 200000, ForeignRate: 1000, Drains: []SharedDrain{
		{Round: 1, Rate: 100000}, {Round: 1, ForeignRate: 1000, Rate: 95000},
		{Round: 2, ForeignRate: 1000, Rate: 85000}, {Round: 2, Rate: 100000},
	}}
	run.Summarise()
	if run.Alone != 100000 || run.Shared != 90000 || run.Share != 0.9 {
		t.Fatalf("summary = %v / %v / %v", run.Alone, run.Shared, run.Share)
	}
	r.Shared = []SharedRun{run}
	md := r.Markdown("")
	for _, want := range []string{"Shared stream: drain of a 200 k-event backlog", "90 % (90.0 k/s of 100 k/s)",
		"**missed**: drain beside a foreign publisher at 1.0 k msg/s in the same stream at 85 %"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestSharedWithoutForeignDrainsEncodes(t *testing.T) {
	run := SharedRun{System: Poller, Drains: []SharedDrain{{Rate: 100}}}
	run.Summarise()
	if _, err := json.Marshal(run); err != nil {
		t.Fatalf("encode a run with no shared drain: %v", err)
	}
}

func TestStageRow(t *testing.T) {
	r := sample()
	var st []Stage
	for i, name := range []string{StageCommitSend, StageSendRecv, StageRecvPublish, StagePublishStored, StageStoredRecv, StageCommitReturn, StageCommitStored} {
		st = append(st, Stage{Name: name, Percentiles: Percentiles{N: 10, P50: float64(i + 1), P99: 10}})
	}
	r.StageRuns = []LatencyRun{{System: Relay, Rate: 1000, Stages: st}}
	md := r.Markdown("")
	for _, want := range []string{"Stages at 1.0 k events/s", "commit → walsender send 1.00 / 10.0", "JetStream stored → consumer receipt 5.00 / 10.0"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestAtomicSection(t *testing.T) {
	r := sample()
	r.Settings.AtomicRate, r.Settings.AtomicBatches, r.Settings.AtomicBacklog = 5000, []int{10}, 300000
	for _, sys := range []string{Relay, RelayAtomic} {
		rate := map[string]float64{Relay: 100000, RelayAtomic: 80000}[sys]
		for round := 1; round <= 2; round++ {
			p := Percentiles{N: 1000, P50: 1, P99: 4, P999: 8, Max: 9}
			r.Atomic = append(r.Atomic, AtomicRun{System: sys, Round: round, Batch: 10,
				Latency: LatencyRun{System: sys, Rate: 5000, CommitAck: p, Cost: Cost{ConsumerCPU: 0.5, NATSCPU: 1}},
				Drain:   CatchupRun{System: sys, Rate: rate + float64(round)*1000, Cost: Cost{ConsumerCPU: 0.25, NATSCPU: 0.75}}})
		}
	}
	// A drain that did not run counts in neither rate nor CPU.
	r.Atomic = append(r.Atomic, AtomicRun{System: RelayAtomic, Round: 3, Batch: 10, Latency: r.Atomic[2].Latency})
	md := r.Markdown("")
	for _, want := range []string{
		"cdcrelay with `--atomic-transactions`", "drains of a 300 k-event backlog",
		"| 10-event tx: drain rate, events/s | 101 k–102 k | 81.0 k–82.0 k | 0.80 |",
		"| … relay (NATS) CPU s / 100k events, drain | 0.25 (0.75) | 0.25 (0.75) | 1.00 |",
		"| 10-event tx at 5.0 k events/s: commit → JetStream ack, ms (p99 compared) | 1.00 / 4.00 / 8.00 / 9.00 | 1.00 / 4.00 / 8.00 / 9.00 | 1.00 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
