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
		// The trip's stages come first; the totals after them are JSON only.
		// Runs before 2026-12-03 timed a stand-in walsender (the "tap").
		var parts []string
		how := "cdcrelay with --diagnostic-headers"
		for _, s := range l.Stages {
			if s.Name == StageCommitReturn || s.Name == StageCommitStored {
				break
			}
			if strings.Contains(s.Name, "tap") {
				how = "a replication tap beside cdcrelay"
			}
			parts = append(parts, fmt.Sprintf("%s %s / %s", s.Name, ms(s.P50), ms(s.P99)))
		}
		t.row(fmt.Sprintf("Stages at %s events/s, p50 / p99 ms (separate run, %s)", kilo(l.Rate), how),
			"–", strings.Join(parts, "; "), "–", "")
	}
}
