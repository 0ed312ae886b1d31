package metrics_test

import (
	"testing"
	"time"

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
