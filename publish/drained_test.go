package publish_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/publish"
)

// Drained is closed once everything submitted is released, also when the
// last items are events without a closing mark and nobody called Flush:
// the slot session drains after a shutdown that stopped it in the middle of
// a transaction, and it waits on Drained alone.
func TestDrainedHandsOverEventsWithoutAMark(t *testing.T) {
	f := newFixture(t, publish.Config{}, jetstream.StreamConfig{})
	ctx := context.Background()
	evs := events(t, 3, func(int) string { return "a.x" })
	for _, ev := range evs {
		if err := f.pipe.Submit(ctx, flow.Item{Event: ev}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-f.pipe.Drained():
	case <-time.After(30 * time.Second):
		t.Fatalf("window not drained after 30 s: %d of %d events resolved", len(f.resolvedItems()), len(evs))
	}
	checkStream(t, f.url, evs)
}

// Settled waits only for what a slot position can depend on: everything up
// to the last mark. In atomic mode a transaction is sent whole, so the
// events of one whose end never came (a shutdown stopped the reader in the
// middle of it) are never sent, and a drain that waited for them (Drained)
// waited out the whole shutdown timeout.
func TestSettledDoesNotWaitForAnUnfinishedTransaction(t *testing.T) {
	f := newFixture(t, publish.Config{AtomicTransactions: true}, jetstream.StreamConfig{
		Name: "bus", Subjects: []string{"a.>", "b.>"}, Storage: jetstream.FileStorage, AllowAtomicPublish: true,
	})
	ctx := context.Background()
	evs := events(t, 4, func(int) string { return "a.x" })
	items := []flow.Item{{Event: evs[0]}, {Event: evs[1]}, {Mark: 100}, {Event: evs[2]}, {Event: evs[3]}}
	for _, it := range items {
		if err := f.pipe.Submit(ctx, it, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-f.pipe.Settled():
	case <-time.After(30 * time.Second):
		t.Fatalf("not settled after 30 s: %d of 3 items up to the mark resolved", len(f.resolvedItems()))
	}
	msgs := testenv.StreamMessages(t, f.url, "bus")
	if len(msgs) != 2 || msgs[0].Header.Get(jetstream.MsgIDHeader) != evs[0].EventIDString() ||
		msgs[1].Header.Get(jetstream.MsgIDHeader) != evs[1].EventIDString() {
		t.Fatalf("stream holds %d messages, want the finished transaction's 2", len(msgs))
	}
}
