package relay

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/replication"
)

// Snapshot is what metrics, readiness and status see of a relay at one moment.
type Snapshot struct {
	State     election.State
	Streaming bool
	// OriginFilter is set while the stream drops changes made under a
	// replication origin, the relay's own flips among them (PostgreSQL 16+).
	OriginFilter bool
	LeaderSince  time.Time // zero unless leading
	// Confirmed is the position confirmed (or about to be) to the slot.
	Confirmed pglogrepl.LSN
	// InFlight and InFlightBytes are the window's occupancy.
	InFlight      int
	InFlightBytes int64
	// OldestPending is the commit time of the oldest transaction in the
	// window; its age is the relay's lag in seconds. Zero when none.
	OldestPending time.Time
	// HeartbeatAge is how long ago a heartbeat last came back through the
	// slot; HeartbeatRTT how long its trip took. HeartbeatStale is set while
	// streaming when none came back for three intervals.
	HeartbeatAge   time.Duration
	HeartbeatRTT   time.Duration
	HeartbeatStale bool
	// Flipped counts rows flipped by this process.
	Flipped uint64
	// FlipsGivenUp counts published events whose rows never became visible
	// to the flip; their positions were confirmed without the flip.
	FlipsGivenUp uint64
	// Stalls are the conditions holding the leader up now, oldest first.
	Stalls []Stall
	// TermEnds counts leadership terms that ended, by cause (TermEnd*).
	TermEnds map[string]uint64
}

// termEnds counts term endings by cause.
type termEnds struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (t *termEnds) add(cause string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = map[string]uint64{}
	}
	t.n[cause]++
}

func (t *termEnds) snapshot() map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]uint64, len(t.n))
	for k, v := range t.n {
		out[k] = v
	}
	return out
}

// Why a leadership term ends: the keys of Snapshot.TermEnds.
const (
	TermEndShutdown       = "shutdown"        // the relay is stopping
	TermEndLeadershipLost = "leadership_lost" // the lock or its connection was lost
	TermEndPostgres       = "postgres"        // PostgreSQL failed or refused
	TermEndNATS           = "nats"            // NATS failed or the stream is missing
	TermEndError          = "error"           // anything else
)

// TermEndCauses lists the causes of a term ending other than a shutdown:
// those that make the relay reconnect, for metrics that export each at
// zero.
func TermEndCauses() []string {
	return []string{TermEndLeadershipLost, TermEndPostgres, TermEndNATS, TermEndError}
}

// termCause names why a term ended.
func termCause(err error) string {
	var check *replication.CheckError
	switch {
	case err == nil:
		return TermEndShutdown
	case errors.Is(err, errLeaseLost), errors.Is(err, election.ErrLost):
		return TermEndLeadershipLost
	case replication.IsConnLost(err), election.IsConnLost(err), errors.As(err, &check):
		return TermEndPostgres
	case errors.Is(err, publish.ErrStreamNotFound), errors.Is(err, errNATS):
		return TermEndNATS
	default:
		return TermEndError
	}
}

// errNATS marks term failures on the NATS side.
var errNATS = errors.New("nats")

// Snapshot returns the relay's state now.
func (r *Relay) Snapshot() Snapshot {
	s := Snapshot{
		State:        r.elector.State(),
		Streaming:    r.streaming.Load(),
		OriginFilter: r.originFiltered.Load(),
		HeartbeatAge: r.heartbeat.Age(),
		HeartbeatRTT: r.heartbeat.RTT(),
		Flipped:      r.flips.Flipped.Load(),
		FlipsGivenUp: r.flipsGivenUp.Load(),
		TermEnds:     r.ends.snapshot(),
		Stalls:       r.stalls.current(),
	}
	if sess := r.session.Load(); sess != nil {
		s.Confirmed = sess.Confirmed()
	}
	if since := r.leaderSince.Load(); since != 0 {
		s.LeaderSince = time.Unix(0, since)
	}
	if p := r.pipeline.Load(); p != nil {
		st := p.Stats()
		s.InFlight, s.InFlightBytes = st.InFlight, st.InFlightB
		s.OldestPending = p.OldestPending()
		if since := st.StalledSince; !since.IsZero() && time.Since(since) >= publishStallAfter {
			s.Stalls = append(s.Stalls, Stall{Cause: StallPublish, Since: since,
				Detail: "publishing to NATS fails and is retried: " + st.StallCause})
			oldestFirst(s.Stalls)
		}
	}
	if s.Streaming && r.cfg.HeartbeatInterval > 0 {
		streamingFor := time.Since(time.Unix(0, r.streamingSince.Load()))
		limit := 3 * r.cfg.HeartbeatInterval
		s.HeartbeatStale = streamingFor > limit && (s.HeartbeatAge == 0 || s.HeartbeatAge > limit)
	}
	return s
}

// Counters are the cumulative event counts of every term of this process.
func (r *Relay) Counters() *publish.Counters { return &r.counters }

// Ready reports whether the process does its job now: a leader streaming
// with fresh heartbeats, or a standby holding a working lock connection.
// The reason is one line for /readyz and logs.
func (r *Relay) Ready() (bool, string) {
	if !r.running.Load() {
		return false, "not running"
	}
	s := r.Snapshot()
	switch s.State {
	case election.StateStandby:
		return true, "standby"
	case election.StateUnhealthy:
		return false, "unhealthy: no working connection to PostgreSQL"
	}
	switch {
	case len(s.Stalls) > 0:
		st := s.Stalls[0]
		return false, fmt.Sprintf("leader, stalled for %s: %s", time.Since(st.Since).Round(time.Second), st.Detail)
	case !s.Streaming:
		return false, "leader, not streaming yet (preparing the slot or backfilling)"
	case s.HeartbeatStale:
		return false, "leader streaming, but heartbeats are not coming back through the slot"
	}
	return true, "leader streaming"
}
