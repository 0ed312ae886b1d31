package publish_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/publish"
)

// A streamed event's stage times travel as diagnostic headers, in order
// along its trip; without diagnostic headers they stay behind.
func TestDiagnosticHeadersCarryStageTimes(t *testing.T) {
	for _, diag := range []bool{false, true} {
		t.Run(fmt.Sprint("diagnostic=", diag), func(t *testing.T) {
			f := newFixture(t, publish.Config{DiagnosticHeaders: diag}, jetstream.StreamConfig{})
			ev := event(t, 7, "a.x")
			base := time.Now().Add(-time.Second).Truncate(time.Microsecond)
			ev.Trace = flow.Trace{Committed: base, Sent: base.Add(time.Millisecond), Received: base.Add(2 * time.Millisecond)}
			submitAll(t, f.pipe, []*flow.Event{ev})
			waitResolved(t, f, 1)
			h := testenv.StreamMessages(t, f.url, "bus")[0].Header
			names := []string{publish.HeaderCommitTime, publish.HeaderSent, publish.HeaderReceived, publish.HeaderPublished}
			if !diag {
				for _, name := range names {
					if v := h.Get(name); v != "" {
						t.Fatalf("%s=%q without diagnostic headers", name, v)
					}
				}
				return
			}
			var prev time.Time
			for i, name := range names {
				at, err := time.Parse(time.RFC3339Nano, h.Get(name))
				if err != nil {
					t.Fatalf("%s: %v (headers %v)", name, err, h)
				}
				if i < 3 && !at.Equal(base.Add(time.Duration(i)*time.Millisecond)) {
					t.Fatalf("%s=%v, want %v", name, at, base.Add(time.Duration(i)*time.Millisecond))
				}
				if at.Before(prev) {
					t.Fatalf("%s=%v before the previous stage %v", name, at, prev)
				}
				prev = at
			}
		})
	}
}

// Diagnostic headers never decide delivery: an event they would push over
// the server's max_payload is published without them, not dead-lettered.
func TestDiagnosticHeadersYieldToMaxPayload(t *testing.T) {
	f := newFixture(t, publish.Config{DiagnosticHeaders: true}, jetstream.StreamConfig{})
	ev := event(t, 7, "a.x")
	ev.Trace = flow.Trace{Committed: time.Now(), Sent: time.Now(), Received: time.Now()}
	// Room for the row's header and Nats-Msg-Id, not for the diagnostics.
	ev.Payload = make([]byte, 1<<20-150)
	submitAll(t, f.pipe, []*flow.Event{ev})
	waitResolved(t, f, 1)
	msgs := testenv.StreamMessages(t, f.url, "bus")
	if len(msgs) != 1 || len(msgs[0].Data) != len(ev.Payload) {
		t.Fatalf("%d messages stored, want the event", len(msgs))
	}
	if v := msgs[0].Header.Get(publish.HeaderOutboxID); v != "" {
		t.Fatalf("diagnostic header %s=%q on an event at the payload limit", publish.HeaderOutboxID, v)
	}
}
