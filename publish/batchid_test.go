package publish_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/publish"
)

// The server knows a stream's fast batches by their id alone. Another
// publisher (an earlier term's pipeline whose batch is still open, a standby
// taking over, another relay on the shared stream) may have a batch open
// under any id: the pipeline's batches must never take an id someone else
// uses, or that batch's PubAck would resolve events that were never stored.
func TestBatchIDsDoNotCollideWithOtherPublishers(t *testing.T) {
	f := newFixture(t, publish.Config{}, jetstream.StreamConfig{})
	other, js := connect(t, f.url)
	inbox := other.NewInbox()
	// Open batches under the ids a fresh pipeline would have used.
	const open = 50
	for _, id := range []string{"1", "2", "a", "z"} {
		for s := 1; s <= open; s++ {
			op := "1"
			if s == 1 {
				op = "0"
			}
			m := nats.NewMsg("b.other")
			m.Reply = inbox + "." + id + ".500.fail." + strconv.Itoa(s) + "." + op + ".$FI"
			m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("other-%s-%d", id, s))
			m.Data = []byte("x")
			if err := other.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		s, err := js.Stream(t.Context(), "bus")
		if err != nil {
			return err
		}
		if n := s.CachedInfo().State.Msgs; n < 4*open {
			return fmt.Errorf("stream has %d of the other publisher's messages", n)
		}
		return nil
	})
	evs := events(t, 10, func(int) string { return "a.orders" })
	submitAll(t, f.pipe, evs)
	waitResolved(t, f, 10)
	ours := 0
	for _, m := range testenv.StreamMessages(t, f.url, "bus") {
		if m.Subject == "a.orders" {
			ours++
		}
	}
	if ours != 10 {
		t.Fatalf("10 events resolved as stored, %d in the stream", ours)
	}
}
