package replication_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/replication"
)

func TestAssessFailover(t *testing.T) {
	ready := replication.Failover{
		Version: 170010, SlotExists: true, FailoverSlot: true,
		SynchronizedStandbySlots: []string{"standby1"},
		Standbys:                 []replication.Standby{{Name: "s1", Slot: "standby1", State: "streaming", Synchronized: true}},
	}
	persistent := replication.SlotCopy{Host: "h2:5432", InRecovery: true, Exists: true, Synced: true}
	with := func(change func(f *replication.Failover)) replication.Failover {
		f := ready
		f.Standbys = append([]replication.Standby(nil), ready.Standbys...)
		change(&f)
		return f
	}
	for _, c := range []struct {
		name   string
		f      replication.Failover
		copies []replication.SlotCopy
		ready  bool
		why    string
	}{
		{"ready, copy verified", ready, []replication.SlotCopy{persistent}, true, "persistent copy on h2:5432"},
		{"ready, no standby in the URL", ready, nil, true, "not verified"},
		{"PostgreSQL 16", with(func(f *replication.Failover) { f.Version = 160014 }), nil, false, "PostgreSQL 16 keeps no slot"},
		{"standby server", with(func(f *replication.Failover) { f.InRecovery = true }), nil, false, "is a standby"},
		{"no slot", with(func(f *replication.Failover) { f.SlotExists = false }), nil, false, "does not exist"},
		{"not a failover slot", with(func(f *replication.Failover) { f.FailoverSlot = false }), nil, false, "not a failover slot"},
		{"no synchronized_standby_slots", with(func(f *replication.Failover) { f.SynchronizedStandbySlots = nil }), nil, false, "synchronized_standby_slots is empty"},
		{"standby not streaming", with(func(f *replication.Failover) { f.Standbys[0].State = "catchup" }), nil, false, "no standby streams through standby1"},
		{"standby through another slot", with(func(f *replication.Failover) { f.Standbys[0].Slot = "other" }), nil, false, "the relay stalls"},
		{"standbys hidden from the role", with(func(f *replication.Failover) { f.Standbys[0] = replication.Standby{} }), nil, false, "pg_read_all_stats"},
		{"one of two named slots idle", with(func(f *replication.Failover) { f.SynchronizedStandbySlots = []string{"standby1", "standby2"} }), nil, false, "through standby2"},
		{"temporary copy", ready, []replication.SlotCopy{{Host: "h2:5432", Exists: true, Synced: true, Temporary: true}}, false, "not persistent yet"},
		{"no copy", ready, []replication.SlotCopy{{Host: "h2:5432"}}, false, "has no copy"},
		{"invalidated copy", ready, []replication.SlotCopy{{Host: "h2:5432", Exists: true, Synced: true, Invalidated: true}}, false, "invalidated"},
		{"one of two standbys", ready, []replication.SlotCopy{persistent, {Host: "h3:5432"}}, true, "but h3:5432 has no copy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ok, why := replication.Assess(c.f, c.copies)
			if ok != c.ready || !strings.Contains(why, c.why) {
				t.Fatalf("Assess = %v %q, want %v and %q", ok, why, c.ready, c.why)
			}
		})
	}
}

// TestReadFailover reads the primary's view on the package's cluster: no
// standby, the slot not yet there, then there.
func TestReadFailover(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	slot := slotName()
	ctx := testCtx(t)
	f, err := replication.ReadFailover(ctx, d.pool, slot)
	if err != nil {
		t.Fatal(err)
	}
	if f.SlotExists || f.Version < 150000 || f.InRecovery || f.Server == "" {
		t.Fatalf("before the slot: %+v", f)
	}
	rc := connect(t, d.url)
	if _, err := rc.CreateSlot(ctx, slot); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.exec(t, `SELECT pg_drop_replication_slot($1)`, slot) })
	f, err = replication.ReadFailover(ctx, d.pool, slot)
	if err != nil {
		t.Fatal(err)
	}
	if !f.SlotExists || f.Confirmed == 0 || f.FailoverSlot != (f.Version >= 170000) {
		t.Fatalf("with the slot: %+v", f)
	}
	if f.Version >= 170000 && (f.InactiveSince.IsZero() || time.Since(f.InactiveSince) > time.Minute) {
		t.Fatalf("inactive_since %v of an unread slot", f.InactiveSince)
	}
	copies, errs := replication.ReadSlotCopies(ctx, d.url, slot, 5*time.Second)
	if len(copies) != 0 || len(errs) != 0 {
		t.Fatalf("copies on a server without standbys: %v, %v", copies, errs)
	}
}
