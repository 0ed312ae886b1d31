package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/deadletter"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox"
)

// An event on a subject no stream captures is dead-lettered; once the
// stream captures it, replay delivers it exactly once, in the relay's
// stream with its event id, and a second replay is refused.
func TestDeadLetterReplayDeliversOnce(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	ctx := context.Background()
	before, err := outbox.Publish(ctx, h.Pool, "orders.created", []byte("before"))
	if err != nil {
		t.Fatal(err)
	}
	lost, err := outbox.Publish(ctx, h.Pool, "refunds.issued", []byte(`{"refund":7}`), outbox.WithHeader("Trace-Id", "abc"))
	if err != nil {
		t.Fatal(err)
	}
	h.WaitAllDelivered(time.Minute)
	id := lost.String()
	db := []string{"--database-url", h.URL}
	withNATS := append([]string{"--nats-url", h.NATS.URL()}, db...)

	code, out, errOut := runCLI(t, append([]string{"deadletter", "list", "--json"}, db...)...)
	var list []deadletter.Row
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
		t.Fatalf("deadletter list --json: %d %v\n%s%s", code, err, out, errOut)
	}
	if len(list) != 1 || list[0].EventID != id || list[0].Subject != "refunds.issued" || string(list[0].Payload) != `{"refund":7}` ||
		!strings.Contains(list[0].Error, "no stream captures") || list[0].ReplayedAt != nil {
		t.Fatalf("dead letters = %+v", list)
	}
	if code, out, _ := runCLI(t, append([]string{"deadletter", "list"}, db...)...); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "refunds.issued") {
		t.Errorf("deadletter list: %d\n%s", code, out)
	}

	// Not fixed yet: refused, and still waiting.
	code, out, _ = runCLI(t, append([]string{"deadletter", "replay", "--id", id}, withNATS...)...)
	if code != 1 || !strings.Contains(out, "stream bus does not capture subject refunds.issued") {
		t.Errorf("replay before the fix: %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, append([]string{"deadletter", "replay"}, withNATS...)...); code != 1 || !strings.Contains(errOut, "--id or --all is required") {
		t.Errorf("replay without --id: %d %s", code, errOut)
	}

	h.EnsureStream("orders.>", "users.>", "w.>", "refunds.>")
	// Right after the subject is added, without a restart: a relay that
	// judged the replay on its list of the stream's subjects from before
	// refuses it again, and replay tries once more after the relay's
	// refresh.
	code, out, errOut = runCLI(t, append([]string{"deadletter", "replay", "--all", "--wait", "30s"}, withNATS...)...)
	if code != 0 || !strings.Contains(out, "in stream bus at sequence") {
		t.Fatalf("replay: %d\n%s%s", code, out, errOut)
	}

	code, out, _ = runCLI(t, append([]string{"deadletter", "replay", "--id", id}, withNATS...)...)
	if code != 1 || !strings.Contains(out, id+": already replayed at") {
		t.Errorf("second replay: %d\n%s", code, out)
	}
	if code, out, _ := runCLI(t, append([]string{"deadletter", "list"}, db...)...); code != 0 || out != "no dead letters waiting for a replay\n" {
		t.Errorf("deadletter list after the replay: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, append([]string{"deadletter", "list", "--all"}, db...)...); code != 0 || !strings.Contains(out, id) {
		t.Errorf("deadletter list --all: %d\n%s", code, out)
	}

	// Once in the stream, after the event before it, with its headers;
	// nothing else in the stream twice.
	msgs := h.CheckStream()
	var got []string
	for _, m := range msgs {
		got = append(got, m.ID)
		if m.ID == id && (m.Subject != "refunds.issued" || string(m.Data) != `{"refund":7}` || m.Header.Get("Trace-Id") != "abc") {
			t.Errorf("replayed message = %s %q %v", m.Subject, m.Data, m.Header)
		}
	}
	if want := fmt.Sprint([]string{before.String(), id}); fmt.Sprint(got) != want {
		t.Errorf("stream = %v, want %v", got, want)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		var n int
		if err := h.Pool.QueryRow(ctx, `SELECT count(*) FROM bus.dead_letter WHERE replayed_at IS NOT NULL`).Scan(&n); err != nil || n != 1 {
			return fmt.Errorf("%d replayed dead letters (%v)", n, err)
		}
		return nil
	})
}
