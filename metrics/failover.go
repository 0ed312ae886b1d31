package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/replication"
)

// Defaults of FailoverConfig.
const (
	DefaultFailoverInterval = 30 * time.Second
	// IdleWarnFraction is how much of idle_replication_slot_timeout an
	// unread slot may use up before it is reported.
	IdleWarnFraction = 0.5
)

// FailoverConfig names what FailoverWatch checks.
type FailoverConfig struct {
	// URL is the relay's database URL: the standbys it names are asked for
	// their copies of the slot.
	URL  string
	Slot string
	// Interval between checks (default DefaultFailoverInterval).
	Interval time.Duration
}

// FailoverState is one check's result.
type FailoverState struct {
	replication.Failover
	Copies []replication.SlotCopy
	// Unreachable are the hosts of the URL that could not be asked (the
	// old primary after a failover, say).
	Unreachable []string
	Ready       bool
	Why         string
	// IdleLeft is how long an unread slot has before the server
	// invalidates it; meaningful when IdleWarn is set.
	IdleLeft time.Duration
	IdleWarn bool
	At       time.Time
}

// FailoverWatch checks, in every relay process, whether the slot would
// survive a failover and whether an unread slot nears PostgreSQL 18's idle
// timeout, logs when either changes for the worse, and exports both.
type FailoverWatch struct {
	pool   *pgxpool.Pool
	cfg    FailoverConfig
	log    zerolog.Logger
	state  atomic.Pointer[FailoverState]
	errors atomic.Uint64
}

// NewFailoverWatch prepares a watch; Run checks.
func NewFailoverWatch(pool *pgxpool.Pool, cfg FailoverConfig, log zerolog.Logger) *FailoverWatch {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultFailoverInterval
	}
	return &FailoverWatch{pool: pool, cfg: cfg, log: log}
}

// Run checks every Interval until ctx ends; failed checks are counted and
// logged, and the next one tries again.
func (w *FailoverWatch) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		prev := w.state.Load()
		st, err := w.check(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			w.errors.Add(1)
			w.log.Warn().Err(err).Msg("failover readiness check failed")
		default:
			w.report(prev, st)
			w.state.Store(st)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (w *FailoverWatch) check(ctx context.Context) (*FailoverState, error) {
	qctx, cancel := context.WithTimeout(ctx, DefaultQueryTimeout)
	defer cancel()
	f, err := replication.ReadFailover(qctx, w.pool, w.cfg.Slot)
	if err != nil {
		return nil, err
	}
	st := &FailoverState{Failover: f, At: time.Now()}
	var errs []error
	st.Copies, errs = replication.ReadSlotCopies(ctx, w.cfg.URL, w.cfg.Slot, 5*time.Second)
	for _, err := range errs {
		st.Unreachable = append(st.Unreachable, err.Error())
	}
	st.Ready, st.Why = replication.Assess(f, st.Copies)
	st.IdleLeft, st.IdleWarn = IdleRisk(f, st.At)
	return st, nil
}

// Actionable reports whether not being failover-ready is something to fix:
// on PostgreSQL 17+, with the slot created, and standbys to fail over to.
// Before 17 no setup can be ready, and without a standby there is no
// failover to prepare for.
func Actionable(f replication.Failover) bool {
	return f.Version >= 170000 && f.SlotExists && !f.InRecovery &&
		(len(f.Standbys) > 0 || len(f.SynchronizedStandbySlots) > 0)
}

// IdleRisk says how long an unread slot has left before the server
// invalidates it, and whether more than IdleWarnFraction of the timeout is
// used up.
func IdleRisk(f replication.Failover, now time.Time) (left time.Duration, warn bool) {
	if f.IdleTimeout <= 0 || f.InactiveSince.IsZero() || !f.SlotExists {
		return 0, false
	}
	idle := now.Sub(f.InactiveSince)
	return max(f.IdleTimeout-idle, 0), idle > time.Duration(float64(f.IdleTimeout)*IdleWarnFraction)
}

// report logs what got worse since the previous check.
func (w *FailoverWatch) report(prev, st *FailoverState) {
	if !st.Ready && (prev == nil || prev.Ready || prev.Why != st.Why) {
		ev := w.log.Info()
		if Actionable(st.Failover) {
			ev = w.log.Warn()
		}
		ev.Str("slot", w.cfg.Slot).Str("reason", st.Why).Msg("not failover-ready: a failover now loses the slot (the relay then recreates it and backfills)")
	}
	if st.Ready && prev != nil && !prev.Ready {
		w.log.Info().Str("slot", w.cfg.Slot).Str("reason", st.Why).Msg("failover-ready")
	}
	if st.IdleWarn {
		w.log.Warn().Str("slot", w.cfg.Slot).Time("inactive_since", st.InactiveSince).Dur("invalidated_in", st.IdleLeft).
			Dur("idle_replication_slot_timeout", st.IdleTimeout).
			Msg("slot unread for most of idle_replication_slot_timeout: the server will invalidate it (the relay then recreates it and backfills)")
	}
}

// State is the last check's result; false before the first succeeded.
func (w *FailoverWatch) State() (FailoverState, bool) {
	st := w.state.Load()
	if st == nil {
		return FailoverState{}, false
	}
	return *st, true
}

// Detail is one line for the readiness detail.
func (w *FailoverWatch) Detail() string {
	st, ok := w.State()
	switch {
	case !ok:
		return "failover readiness not checked yet"
	case st.IdleWarn:
		return "slot unread, invalidated by idle_replication_slot_timeout in " + st.IdleLeft.Round(time.Second).String()
	case st.Ready:
		return "failover-ready: " + st.Why
	}
	return "not failover-ready: " + st.Why
}

// failoverDescs are the metrics of a FailoverWatch.
type failoverDescs struct {
	ready, failoverSlot, copy, inactive, idleTimeout *prometheus.Desc
}

func newFailoverDescs() failoverDescs {
	return failoverDescs{
		ready: desc("failover_ready",
			"1 when a failover would keep the slot: a FAILOVER slot (PostgreSQL 17+), synchronized_standby_slots set, a standby streaming through it, and a persistent copy on each standby the database URL names.", "slot"),
		failoverSlot: desc("slot_failover", "1 when the slot is a failover slot (pg_replication_slots.failover, PostgreSQL 17+).", "slot"),
		copy: desc("standby_slot_copy",
			"1 when the standby (a host of the database URL) holds a synced, persistent, valid copy of the slot; 0 when its copy is missing, temporary or invalidated.", "slot", "standby"),
		inactive: desc("slot_inactive_seconds", "How long no walsender has read the slot (PostgreSQL 17+); absent while one does.", "slot"),
		idleTimeout: desc("slot_idle_timeout_seconds",
			"idle_replication_slot_timeout (PostgreSQL 18+): a slot unread this long is invalidated at the next checkpoint; absent when off.", "slot"),
	}
}

func (d failoverDescs) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.ready, d.failoverSlot, d.copy, d.inactive, d.idleTimeout} {
		ch <- x
	}
}

func (d failoverDescs) collect(w *FailoverWatch, slot string, now time.Time, gauge func(*prometheus.Desc, float64, ...string)) {
	st, ok := w.State()
	if !ok {
		return
	}
	gauge(d.ready, boolFloat(st.Ready), slot)
	if !st.SlotExists {
		return
	}
	gauge(d.failoverSlot, boolFloat(st.FailoverSlot), slot)
	for _, c := range st.Copies {
		gauge(d.copy, boolFloat(c.Persistent()), slot, c.Host)
	}
	if !st.InactiveSince.IsZero() {
		gauge(d.inactive, max(now.Sub(st.InactiveSince).Seconds(), 0), slot)
	}
	if st.IdleTimeout > 0 {
		gauge(d.idleTimeout, st.IdleTimeout.Seconds(), slot)
	}
}
