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
	for i, name := range []string{StageCommitSend, StageSendTap, StageTapStored, StageStoredRecv, StageCommitReturn, StageCommitStored} {
		st = append(st, Stage{Name: name, Percentiles: Percentiles{N: 10, P50: float64(i + 1), P99: 10}})
	}
	r.StageRuns = []LatencyRun{{System: Relay, Rate: 1000, Stages: st}}
	md := r.Markdown("")
	for _, want := range []string{"Stages at 1.0 k events/s", "commit → walsender send 1.00 / 10.0", "JetStream stored → consumer receipt 4.00 / 10.0"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
