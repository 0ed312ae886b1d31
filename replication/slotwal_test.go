package replication_test

import (
	"context"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/pgcluster"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/replication"
)

// The room left before a slot loses WAL is known only under a
// max_slot_wal_keep_size: without one it is -1 (and the metric absent).
func TestReadSlotWALSafeWAL(t *testing.T) {
	env.Cluster(t) // a second cluster of our own: skipped on external servers too
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		keep      string
		wantLimit int64 // -1: no limit
	}{
		{"-1", -1},
		{"1GB", 1 << 30},
	} {
		t.Run("max_slot_wal_keep_size="+tc.keep, func(t *testing.T) {
			c, err := pgcluster.Start(ctx, testenv.ClusterOptions(pgcluster.Options{Settings: map[string]string{"max_slot_wal_keep_size": tc.keep}}))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := c.Stop(); err != nil {
					t.Error(err)
				}
			}()
			pool := testenv.Pool(t, c.URL("postgres"))
			if _, err := pool.Exec(ctx, `SELECT pg_create_logical_replication_slot('safe_wal', 'pgoutput')`); err != nil {
				t.Fatal(err)
			}
			slot, err := replication.ReadSlotWAL(ctx, pool, "safe_wal")
			if err != nil {
				t.Fatal(err)
			}
			const segment = 16 << 20
			switch {
			case tc.wantLimit < 0 && slot.SafeBytes != -1:
				t.Errorf("no limit: safe %d bytes, want -1", slot.SafeBytes)
			// The limit minus what the slot retains, to a WAL segment or two.
			case tc.wantLimit > 0 && (slot.SafeBytes < tc.wantLimit-slot.RetainedBytes-2*segment || slot.SafeBytes > tc.wantLimit+2*segment):
				t.Errorf("limit %d bytes, %d retained: safe %d bytes", tc.wantLimit, slot.RetainedBytes, slot.SafeBytes)
			}
		})
	}
}
