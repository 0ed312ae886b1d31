package relay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/pgcluster"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// On PostgreSQL 17+ the slot is a failover slot exactly while
// synchronized_standby_slots names standbys: without the setting a
// standby's synced copy could confirm flips and dead letters the standby
// does not have, and a promotion would lose them (found by review). The
// leader follows the setting as it changes, by ending its term; events
// keep flowing.
func TestSlotIsAFailoverSlotOnlyWithSynchronizedStandbySlots(t *testing.T) {
	env.Cluster(t)                                    // skips when the tests run against an external server
	c := testenv.StartCluster(t, pgcluster.Options{}) // the run's version: 17+ in the matrix
	h := relaytest.NewAt(t, env, c.URL("postgres"), true)
	ctx := context.Background()
	var version int
	if err := h.Pool.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 170000 {
		t.Skipf("failover slots need PostgreSQL 17 (server is %d)", version)
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := h.Pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	failover := func(want bool) {
		t.Helper()
		testenv.Eventually(t, time.Minute, func() error {
			var is bool
			if err := h.Pool.QueryRow(ctx, `SELECT failover FROM pg_replication_slots WHERE slot_name = $1`, "cdcrelay").Scan(&is); err != nil {
				return err
			}
			if is != want {
				return fmt.Errorf("the slot's failover flag is %v, want %v", is, want)
			}
			return nil
		})
	}
	h.Cfg.Slot = "cdcrelay"
	r := h.Start()
	defer r.Stop(t)
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 1, 5, &seq)
	h.WaitAllDelivered(time.Minute)
	failover(false) // nothing names a standby

	exec(`SELECT pg_create_physical_replication_slot('standby1', true)`)
	exec(`ALTER SYSTEM SET synchronized_standby_slots = 'standby1'`)
	exec(`SELECT pg_reload_conf()`)
	failover(true)

	exec(`ALTER SYSTEM RESET synchronized_standby_slots`)
	exec(`SELECT pg_reload_conf()`)
	failover(false)
	exec(`SELECT pg_drop_replication_slot('standby1')`)
	relaytest.WriteN(t, h, 1, 5, &seq)
	h.WaitAllDelivered(time.Minute)
	h.CheckRowsMatchStream(h.CheckStream())
}
