package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/health"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/replication"
)

func TestIdleRisk(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	slot := func(timeout, idle time.Duration) replication.Failover {
		f := replication.Failover{SlotExists: true, IdleTimeout: timeout}
		if idle >= 0 {
			f.InactiveSince = now.Add(-idle)
		}
		return f
	}
	for _, c := range []struct {
		name string
		f    replication.Failover
		left time.Duration
		warn bool
	}{
		{"no timeout", slot(0, time.Hour), 0, false},
		{"active slot", slot(time.Hour, -1), 0, false},
		{"idle a little", slot(time.Hour, 10*time.Minute), 50 * time.Minute, false},
		{"idle most of it", slot(time.Hour, 40*time.Minute), 20 * time.Minute, true},
		{"past it", slot(time.Hour, 2*time.Hour), 0, true},
		{"no slot", replication.Failover{IdleTimeout: time.Hour, InactiveSince: now.Add(-2 * time.Hour)}, 0, false},
	} {
		left, warn := metrics.IdleRisk(c.f, now)
		if warn != c.warn || (warn && left != c.left) {
			t.Errorf("%s: IdleRisk = %v, %v; want %v, %v", c.name, left, warn, c.left, c.warn)
		}
	}
}

// TestFailoverMetrics runs the watch beside a relay on the package's single
// server: never failover-ready (no standby), not a failover slot (nothing
// names a standby in synchronized_standby_slots), and the slot's idle time
// once the relay stops (17+).
func TestFailoverMetrics(t *testing.T) {
	h := relaytest.New(t, env, true)
	var version int
	if err := h.Pool.QueryRow(context.Background(), `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	r := h.Start()
	h.WaitStreaming(r)
	reg := prometheus.NewRegistry()
	w := metrics.NewFailoverWatch(h.Pool, metrics.FailoverConfig{URL: h.URL, Slot: "cdcrelay", Interval: 100 * time.Millisecond}, zerolog.Nop())
	if err := metrics.Register(reg, metrics.Config{Relay: r.Relay, Pool: h.Pool, Failover: w}); err != nil {
		t.Fatal(err)
	}
	srv, err := health.Listen(health.Config{Addr: "127.0.0.1:0", Ready: r.Relay.Ready, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served, watched := make(chan error, 1), make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	go func() { watched <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := errors.Join(<-served, <-watched); err != nil {
			t.Error(err)
		}
	})
	addr := srv.Addr()
	waitMetrics(t, addr, eq("cdcrelay_failover_ready", 0, "slot", "cdcrelay"), eq("cdcrelay_slot_failover", 0, "slot", "cdcrelay"),
		eq("cdcrelay_metrics_query_errors_total", 0, "query", "failover"))
	if _, ok := value(scrape(t, addr), "cdcrelay_slot_inactive_seconds", "slot", "cdcrelay"); ok {
		t.Errorf("cdcrelay_slot_inactive_seconds while the relay streams")
	}
	if version < 170000 {
		return
	}
	r.Stop(t)
	waitMetrics(t, addr, gt("cdcrelay_slot_inactive_seconds", 0, "slot", "cdcrelay"))
}

func TestActionable(t *testing.T) {
	standby := []replication.Standby{{Name: "s1"}}
	for _, c := range []struct {
		name string
		f    replication.Failover
		want bool
	}{
		{"PostgreSQL 16 with a standby", replication.Failover{Version: 160014, SlotExists: true, Standbys: standby}, false},
		{"17 without standbys", replication.Failover{Version: 170010, SlotExists: true}, false},
		{"17 before the slot", replication.Failover{Version: 170010, Standbys: standby}, false},
		{"17 with a standby", replication.Failover{Version: 170010, SlotExists: true, Standbys: standby}, true},
		{"17 with synchronized_standby_slots", replication.Failover{Version: 170010, SlotExists: true, SynchronizedStandbySlots: []string{"s1"}}, true},
	} {
		if got := metrics.Actionable(c.f); got != c.want {
			t.Errorf("%s: Actionable = %v, want %v", c.name, got, c.want)
		}
	}
}
