package replication_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/replication"
)

func TestLookupSlot(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	slot := slotName()

	s, err := replication.LookupSlot(ctx, d.pool, slot)
	if err != nil {
		t.Fatal(err)
	}
	if s.Exists || s.Name != slot {
		t.Fatalf("missing slot: %+v", s)
	}

	c := connect(t, d.url)
	snap, err := c.CreateSlot(ctx, slot)
	if err != nil {
		t.Fatal(err)
	}
	s, err = replication.LookupSlot(ctx, d.pool, slot)
	if err != nil {
		t.Fatal(err)
	}
	want := replication.Slot{
		Name: slot, Type: "logical", Plugin: "pgoutput", Database: d.name(t), WALStatus: s.WALStatus,
		ConfirmedFlush: snap.ConsistentPoint, Restart: s.Restart, Exists: true,
	}
	if s != want || s.Restart == 0 || s.Restart > snap.ConsistentPoint {
		t.Fatalf("inactive slot:\n got %+v\nwant %+v", s, want)
	}
	if c.ServerVersion() >= 130000 && s.WALStatus != "reserved" {
		t.Fatalf("wal_status %q", s.WALStatus)
	}

	if err := c.Start(ctx, slot, 0, startOptions(c)); err != nil {
		t.Fatal(err)
	}
	s, err = replication.LookupSlot(ctx, d.pool, slot)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Active || s.ActivePID != int32(c.BackendPID()) || s.Invalidated {
		t.Fatalf("active slot: %+v, backend %d", s, c.BackendPID())
	}
}

func TestTerminateActiveFreesSlot(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	slot := slotName()

	old := connect(t, d.url)
	if _, err := old.CreateSlot(ctx, slot); err != nil {
		t.Fatal(err)
	}
	if err := old.Start(ctx, slot, 0, startOptions(old)); err != nil {
		t.Fatal(err)
	}

	c := connect(t, d.url)
	err := c.Start(ctx, slot, 0, startOptions(c))
	if !errors.Is(err, replication.ErrSlotActive) || replication.IsConnLost(err) {
		t.Fatalf("start on an active slot: %v", err)
	}
	if err := replication.TerminateActive(ctx, d.pool, slot); err != nil {
		t.Fatalf("terminate: %v", err)
	}
	if err := c.Start(ctx, slot, 0, startOptions(c)); err != nil {
		t.Fatalf("start after terminate: %v", err)
	}
	s, err := replication.LookupSlot(ctx, d.pool, slot)
	if err != nil {
		t.Fatal(err)
	}
	if s.ActivePID != int32(c.BackendPID()) {
		t.Fatalf("slot held by %d, want %d", s.ActivePID, c.BackendPID())
	}
	// The deposed walsender's Conn learns it is gone.
	for {
		_, err := old.Receive(time.Now().Add(30 * time.Second))
		if err == nil {
			continue
		}
		if !replication.IsConnLost(err) {
			t.Fatalf("old connection: %v", err)
		}
		break
	}
	// Inactive and missing slots return at once.
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := replication.TerminateActive(ctx, d.pool, slotName()); err != nil {
		t.Fatal(err)
	}
}

// The relay's own role may end its deposed walsender, but not a
// superuser's.
func TestTerminateActiveAsRelayRole(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	role, u := newRole(t, d, "REPLICATION")
	grantRelay(t, d, role)
	q := connectPgx(t, u)

	super := connect(t, d.url)
	slot := slotName()
	if _, err := super.CreateSlot(ctx, slot); err != nil {
		t.Fatal(err)
	}
	if err := super.Start(ctx, slot, 0, startOptions(super)); err != nil {
		t.Fatal(err)
	}
	if err := replication.TerminateActive(ctx, q, slot); err == nil {
		t.Fatalf("role %s terminated a superuser's walsender", role)
	}

	old := connect(t, u)
	mine := slotName()
	if _, err := old.CreateSlot(ctx, mine); err != nil {
		t.Fatal(err)
	}
	if err := old.Start(ctx, mine, 0, startOptions(old)); err != nil {
		t.Fatal(err)
	}
	if err := replication.TerminateActive(ctx, q, mine); err != nil {
		t.Fatalf("terminate own walsender: %v", err)
	}
	c := connect(t, u)
	if err := c.Start(ctx, mine, 0, startOptions(c)); err != nil {
		t.Fatalf("start after terminate: %v", err)
	}
}

func TestDropSlot(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	slot := slotName()
	c := connect(t, d.url)
	if err := replication.Drop(ctx, d.pool, slot); err != nil {
		t.Fatalf("drop a missing slot: %v", err)
	}
	if _, err := c.CreateSlot(ctx, slot); err != nil {
		t.Fatal(err)
	}
	if err := replication.Drop(ctx, d.pool, slot); err != nil {
		t.Fatal(err)
	}
	s, err := replication.LookupSlot(ctx, d.pool, slot)
	if err != nil {
		t.Fatal(err)
	}
	if s.Exists {
		t.Fatalf("slot survived the drop: %+v", s)
	}
	if _, err := c.CreateSlot(ctx, "Bad-Name"); err == nil || replication.IsConnLost(err) {
		t.Fatalf("bad slot name: %v", err)
	}
}
