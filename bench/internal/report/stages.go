package report

import (
	"fmt"
	"strings"
)

// Stage names of the per-stage breakdown. The walsender and "tap" are a
// bare replication client's on a second slot of the relay's publication,
// decoding the same WAL at the same time: the relay does not expose when
// its own walsender sent an event or when it received it.
const (
	StageCommitSend   = "commit → walsender send"
	StageSendTap      = "walsender send → tap receipt"
	StageTapStored    = "tap receipt → JetStream stored"
	StageStoredRecv   = "JetStream stored → consumer receipt"
	StageCommitReturn = "commit → writer's commit returned"
	StageCommitStored = "commit → JetStream stored"
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
		for _, s := range l.Stages[:4] {
			parts = append(parts, fmt.Sprintf("%s %s / %s", s.Name, ms(s.P50), ms(s.P99)))
		}
		t.row(fmt.Sprintf("Stages at %s events/s, p50 / p99 ms (separate run, a replication tap beside cdcrelay)", kilo(l.Rate)),
			"–", strings.Join(parts, "; "), "–", "")
	}
}
