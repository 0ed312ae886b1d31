package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/replication"
)

var states = []election.State{election.StateLeader, election.StateStandby, election.StateUnhealthy}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

// collector builds every metric from the relay's Snapshot and Counters (and
// the slot, the backlog and the pruner) at scrape time: nothing to keep in
// sync, and a scrape sees one consistent snapshot.
type collector struct {
	cfg Config

	published, duplicates, deadLettered, flipped, retries, reconnects *prometheus.Desc
	notAtomic                                                         *prometheus.Desc
	state, leader, streaming, ready, leaderSince, originFilter        *prometheus.Desc
	inFlight, inFlightBytes, confirmed, lagSeconds                    *prometheus.Desc
	heartbeatAge, heartbeatRTT, heartbeatStale                        *prometheus.Desc
	slotLag, slotRetained, slotSafe, slotActive, slotInvalidated      *prometheus.Desc
	unpublished, oldestUnpublished                                    *prometheus.Desc
	pruned, pruneFailures, queryErrors                                *prometheus.Desc
	stalled, flipsGivenUp                                             *prometheus.Desc

	failover failoverDescs

	slotErrors atomic.Uint64
}

func newCollector(cfg Config) *collector {
	return &collector{
		cfg:          cfg,
		failover:     newFailoverDescs(),
		published:    desc("events_published_total", "Events JetStream stored, sent by this process."),
		duplicates:   desc("events_duplicate_total", "Events JetStream acknowledged as duplicates of a message it already had (resends after a failure or a restart)."),
		deadLettered: desc("events_dead_lettered_total", "Events JetStream refused for good, recorded in bus.dead_letter."),
		flipped:      desc("events_flipped_total", "Outbox rows this process marked published_to_nats."),
		retries:      desc("publish_retries_total", "Times publishing stopped after a failure and resent from the first unacknowledged event."),
		notAtomic:    desc("transactions_not_atomic_total", "Transactions --atomic-transactions published the ordinary way, not as one atomic batch (larger than an atomic batch or the window, or holding a dead letter)."),
		reconnects:   desc("reconnects_total", "Leadership terms that ended other than by shutdown, by cause (leadership_lost, postgres, nats, error); each is followed by a reconnect.", "cause"),
		state:        desc("state", "1 for this process's leadership state (leader, standby, unhealthy), 0 for the others.", "state"),
		leader:       desc("leader", "1 while this process holds the leader lock."),
		streaming:    desc("streaming", "1 while this process is the leader and reads the slot."),
		originFilter: desc("origin_filter", "1 while the leader's stream drops changes made under a replication origin, so its walsender skips the relay's own flips (PostgreSQL 16+); 0 when it decodes them (the log says why)."),
		ready:        desc("ready", "1 when /readyz would answer 200: a leader streaming with fresh heartbeats, or a standby with a working lock connection."),
		leaderSince:  desc("leader_since_timestamp_seconds", "When this process took the leader lock (unix time); absent unless leading."),
		inFlight:     desc("in_flight_events", "Events between the slot and the flip: sent or waiting for their ack."),
		inFlightBytes: desc("in_flight_bytes",
			"Bytes of the events in flight."),
		confirmed: desc("confirmed_lsn_bytes", "WAL position (as a byte offset) this process confirmed, or will confirm next, to the slot."),
		lagSeconds: desc("slot_lag_seconds",
			"Age of the oldest commit read from the slot and not yet confirmed; 0 when nothing is in flight; exported by the streaming leader only."),
		heartbeatAge: desc("heartbeat_age_seconds", "Time since a heartbeat last came back through the slot; absent before the first."),
		heartbeatRTT: desc("heartbeat_rtt_seconds", "Time the last heartbeat took from pg_logical_emit_message back to the relay through the slot."),
		heartbeatStale: desc("heartbeat_stale",
			"1 while streaming when no heartbeat came back for three intervals: the slot may have stalled."),
		slotLag: desc("slot_lag_bytes", "WAL written by the server since the slot's confirmed position (pg_current_wal_lsn() - confirmed_flush_lsn).", "slot"),
		slotRetained: desc("slot_retained_wal_bytes",
			"WAL the slot keeps on the server's disk (pg_current_wal_lsn() - restart_lsn).", "slot"),
		slotSafe: desc("slot_safe_wal_bytes",
			"WAL the server can still write before the slot loses WAL it needs (safe_wal_size, bounded by max_slot_wal_keep_size); absent without such a limit.", "slot"),
		slotActive: desc("slot_active", "1 when a walsender is reading the slot; absent when the slot does not exist.", "slot"),
		slotInvalidated: desc("slot_invalidated",
			"1 when the slot lost the WAL it needs (wal_status lost, or invalidated): the leader recreates it and backfills.", "slot"),
		unpublished: desc("outbox_unpublished_events",
			"Committed outbox rows not yet published (leader only; see the backlog notes in the README)."),
		oldestUnpublished: desc("outbox_oldest_unpublished_age_seconds",
			"Age of the oldest committed row not yet published; 0 when none (leader only)."),
		pruned:        desc("outbox_pruned_total", "Published outbox rows deleted by retention."),
		pruneFailures: desc("retention_failures_total", "Retention rounds that failed (they are retried at the next interval)."),
		stalled: desc("stalled",
			"1 while a condition holds the leader up, by cause: slot_creation (creating the slot waits for open transactions), flip_gave_up (published events' rows never became visible to the flip); readiness names the details.", "cause"),
		flipsGivenUp: desc("flip_gave_up_total",
			"Published events whose outbox rows never became visible to the flip; their position was confirmed without the flip."),
		queryErrors: desc("metrics_query_errors_total",
			"Scrape-time or backlog queries to PostgreSQL that failed or timed out, by query.", "query"),
	}
}

// Describe sends every descriptor.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.published, c.duplicates, c.deadLettered, c.flipped, c.retries, c.reconnects, c.notAtomic,
		c.state, c.leader, c.streaming, c.ready, c.leaderSince, c.originFilter,
		c.inFlight, c.inFlightBytes, c.confirmed, c.lagSeconds,
		c.heartbeatAge, c.heartbeatRTT, c.heartbeatStale,
		c.slotLag, c.slotRetained, c.slotSafe, c.slotActive, c.slotInvalidated,
		c.unpublished, c.oldestUnpublished, c.pruned, c.pruneFailures, c.queryErrors,
		c.stalled, c.flipsGivenUp,
	} {
		ch <- d
	}
	c.failover.describe(ch)
}

// Collect reads the relay, the slot, the backlog and the pruner.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	s := c.cfg.Relay.Snapshot()
	n := c.cfg.Relay.Counters()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	counter(c.published, n.Published.Load())
	counter(c.duplicates, n.Duplicates.Load())
	counter(c.deadLettered, n.DeadLetters.Load())
	counter(c.retries, n.Recoveries.Load())
	counter(c.notAtomic, n.NotAtomic.Load())
	counter(c.flipped, s.Flipped)
	counter(c.flipsGivenUp, s.FlipsGivenUp)
	for _, cause := range relay.StallCauses() {
		stalled := false
		for _, st := range s.Stalls {
			stalled = stalled || st.Cause == cause
		}
		gauge(c.stalled, boolFloat(stalled), cause)
	}
	// Every cause from the start, at zero, so that rate() sees the first.
	for _, cause := range relay.TermEndCauses() {
		counter(c.reconnects, s.TermEnds[cause], cause)
	}

	for _, st := range states {
		gauge(c.state, boolFloat(s.State == st), st.String())
	}
	gauge(c.leader, boolFloat(s.State == election.StateLeader))
	gauge(c.streaming, boolFloat(s.Streaming))
	gauge(c.originFilter, boolFloat(s.OriginFilter))
	ready, _ := c.cfg.Relay.Ready()
	gauge(c.ready, boolFloat(ready))
	if !s.LeaderSince.IsZero() {
		gauge(c.leaderSince, float64(s.LeaderSince.UnixNano())/1e9)
	}

	gauge(c.inFlight, float64(s.InFlight))
	gauge(c.inFlightBytes, float64(s.InFlightBytes))
	if s.Confirmed != 0 {
		gauge(c.confirmed, float64(s.Confirmed))
	}
	// Only the streaming leader knows: a standby's 0 would hide, in a max()
	// over replicas, the lag of a leader that stopped reporting.
	if s.Streaming {
		lag := 0.0
		if !s.OldestPending.IsZero() {
			lag = max(now.Sub(s.OldestPending).Seconds(), 0)
		}
		gauge(c.lagSeconds, lag)
	}

	if s.HeartbeatAge > 0 {
		gauge(c.heartbeatAge, s.HeartbeatAge.Seconds())
	}
	if s.HeartbeatRTT > 0 {
		gauge(c.heartbeatRTT, s.HeartbeatRTT.Seconds())
	}
	gauge(c.heartbeatStale, boolFloat(s.HeartbeatStale))

	c.collectSlot(ch, gauge)
	if b := c.cfg.Backlog; b != nil {
		if v, ok := b.Value(); ok {
			gauge(c.unpublished, float64(v.Unpublished))
			age := 0.0
			if !v.Oldest.IsZero() {
				age = max(now.Sub(v.Oldest).Seconds(), 0)
			}
			gauge(c.oldestUnpublished, age)
		}
		counter(c.queryErrors, b.Errors(), "backlog")
	}
	if p := c.cfg.Prune; p != nil {
		counter(c.pruned, p.Pruned())
		counter(c.pruneFailures, p.Failures())
	}
	if w := c.cfg.Failover; w != nil {
		c.failover.collect(w, c.cfg.Slot, now, gauge)
		counter(c.queryErrors, w.errors.Load(), "failover")
	}
}

func (c *collector) collectSlot(ch chan<- prometheus.Metric, gauge func(*prometheus.Desc, float64, ...string)) {
	if c.cfg.Pool == nil {
		return
	}
	ctx, cancel := withTimeout(c.cfg.QueryTimeout)
	defer cancel()
	slot, err := replication.ReadSlotWAL(ctx, c.cfg.Pool, c.cfg.Slot)
	if err != nil {
		c.slotErrors.Add(1)
	}
	ch <- prometheus.MustNewConstMetric(c.queryErrors, prometheus.CounterValue, float64(c.slotErrors.Load()), "slot")
	if err != nil || !slot.Exists {
		return
	}
	name := c.cfg.Slot
	gauge(c.slotActive, boolFloat(slot.Active), name)
	gauge(c.slotInvalidated, boolFloat(slot.Invalidated), name)
	if slot.LagBytes >= 0 {
		gauge(c.slotLag, float64(slot.LagBytes), name)
	}
	if slot.RetainedBytes >= 0 {
		gauge(c.slotRetained, float64(slot.RetainedBytes), name)
	}
	if slot.SafeBytes >= 0 {
		gauge(c.slotSafe, float64(slot.SafeBytes), name)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
