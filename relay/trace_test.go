package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/publish"
)

// Every streamed event carries, under diagnostic headers, the times of its
// stages in the order it passed them: its transaction's commit, the
// walsender's send, the relay's receipt, the hand-off to NATS.
func TestStreamedEventsCarryTheirStageTimes(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	relaytest.Writers(ctx, t, 2, relaytest.MixedWriter(h, 50))
	h.WaitAllDelivered(time.Minute)
	msgs := h.CheckStream()
	names := []string{publish.HeaderCommitTime, publish.HeaderSent, publish.HeaderReceived, publish.HeaderPublished}
	for i, m := range msgs {
		var prev time.Time
		for _, name := range names {
			at, err := time.Parse(time.RFC3339Nano, m.Header.Get(name))
			if err != nil {
				t.Fatalf("message %d: %s: %v", i, name, err)
			}
			// PostgreSQL's timestamps are whole microseconds.
			if at.Before(prev.Truncate(time.Microsecond)) {
				t.Fatalf("message %d: %s=%v before the previous stage's %v", i, name, at, prev)
			}
			prev = at
		}
	}
}
