package publish_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/publish"
)

// A trickle of events, a few milliseconds apart, shares batches: each commit
// (its PubAck, the next batch's first ack, a flip) costs the relay several
// wake-ups, which at 100 events/s made ~800 µs of CPU per event when every
// event was committed alone. Commits are counted on the wire, where a core
// subscriber sees the end-of-batch messages the stream does not store.
func TestATrickleSharesBatches(t *testing.T) {
	f := newFixture(t, publish.Config{}, jetstream.StreamConfig{})
	var commits atomic.Int64
	sub, err := f.nc.Subscribe("a.>", func(m *nats.Msg) {
		if strings.HasSuffix(m.Reply, ".3.$FI") || strings.HasSuffix(m.Reply, ".2.$FI") {
			commits.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	const n = 40
	evs := events(t, n, func(int) string { return "a.trickle" })
	for i := range evs {
		submitAll(t, f.pipe, evs[i:i+1])
		// The pacing of the trickle, not a wait for a condition: longer
		// than the old 5 ms linger, well within the new one.
		time.Sleep(8 * time.Millisecond)
	}
	waitResolved(t, f, n)
	checkStream(t, f.url, evs)
	// Every event alone would be 40 commits; a scheduler pause longer than
	// the linger between two events adds one. Half is far from both.
	t.Logf("%d commits for %d events", commits.Load(), n)
	if got := commits.Load(); got > n/2 {
		t.Fatalf("%d commits for %d events %v apart: a trickle should share batches", got, n, 8*time.Millisecond)
	}
}
