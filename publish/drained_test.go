package publish_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/flow"
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
