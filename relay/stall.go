package relay

import (
	"sort"
	"sync"
	"time"
)

// Stall causes: conditions that hold the leader up while it retries, shown
// in readiness, status and the stalled metric.
const (
	// StallSlotCreation: creating the slot waits for transactions that were
	// open when it began (a session idle in transaction, a prepared one).
	StallSlotCreation = "slot_creation"
	// StallFlipGaveUp: published events whose outbox rows never became
	// visible were confirmed without their flip, e.g. because synchronous
	// replication waits on the relay itself.
	StallFlipGaveUp = "flip_gave_up"
	// StallPublish: publishing has failed for publishStallAfter and is
	// being retried (NATS down, the stream without a leader, acks timing
	// out).
	StallPublish = "publish"
)

// publishStallAfter is how long publishing may fail before it counts as a
// stall: a NATS restart or a stream leader change takes a few seconds.
const publishStallAfter = 5 * time.Second

// StallCauses lists every cause, for metrics that export each at zero.
func StallCauses() []string { return []string{StallSlotCreation, StallFlipGaveUp, StallPublish} }

// flipGaveUpShown is how long readiness reports rows a flip gave up on.
const flipGaveUpShown = 10 * time.Minute

// Stall is one condition holding the leader up.
type Stall struct {
	Cause  string
	Detail string
	Since  time.Time
}

// stalls holds the current stalls by cause. A stall with an expiry clears
// itself; the others are cleared by whoever set them.
type stalls struct {
	mu sync.Mutex
	m  map[string]stallEntry
}

type stallEntry struct {
	Stall
	until time.Time // zero: until cleared
}

func (s *stalls) set(cause, detail string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]stallEntry{}
	}
	since := time.Now()
	if old, ok := s.m[cause]; ok {
		since = old.Since
	}
	s.m[cause] = stallEntry{Stall: Stall{Cause: cause, Detail: detail, Since: since}, until: until}
}

func (s *stalls) clear(cause string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, cause)
}

// current returns the stalls in force, oldest first.
func (s *stalls) current() []Stall {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []Stall
	for cause, e := range s.m {
		if !e.until.IsZero() && now.After(e.until) {
			delete(s.m, cause)
			continue
		}
		out = append(out, e.Stall)
	}
	oldestFirst(out)
	return out
}

func oldestFirst(s []Stall) {
	sort.SliceStable(s, func(i, j int) bool { return s[i].Since.Before(s[j].Since) })
}
