package report

import (
	"fmt"
	"strings"
)

// Stage names of the per-stage breakdown, in the order of an event's trip.
// The relay reports its own stages in diagnostic headers (the stage runs run
// it with --diagnostic-headers): its transaction's commit timestamp, when its
// walsender sent it, when the relay received it and handed it to NATS.
const (
	StageCommitSend    = "commit → walsender send"
	StageSendRecv      = "walsender send → relay receipt"
	StageRecvPublish   = "relay receipt → publish"
	StagePublishStored = "publish → JetStream stored"
	StageStoredRecv    = "JetStream stored → consumer receipt"
	StageCommitReturn  = "commit → writer's commit returned"
	StageCommitStored  = "commit → JetStream stored"
	tripStages         = 5 // the first five are the trip, one after the other
)

// Stage is one leg of an event's trip. "commit" is the Commit message's
// timestamp (set by PostgreSQL before the commit record is flushed).
type Stage struct {
	Name string `json:"name"`
	Percentiles
}

// stageRows is one row per stage run: every stage's p50 / p99 in ms.
func (r *Results) stageRows(t *table) {
	for _, l := range r.StageRuns {
		if l.System != Relay || len(l.Stages) == 0 {
			continue
		}
		var parts []string
		for _, s := range l.Stages[:min(tripStages, len(l.Stages))] {
			parts = append(parts, fmt.Sprintf("%s %s / %s", s.Name, ms(s.P50), ms(s.P99)))
		}
		t.row(fmt.Sprintf("Stages at %s events/s, p50 / p99 ms (separate run, cdcrelay with --diagnostic-headers)", kilo(l.Rate)),
			"–", strings.Join(parts, "; "), "–", "")
	}
}
