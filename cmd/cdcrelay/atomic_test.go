package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// `run --atomic-transactions` on a stream without allow_atomic refuses to
// start, in one line naming the setting and both fixes; after `stream
// ensure --atomic-transactions` it runs and publishes.
func TestRunAtomicTransactionsNeedsAllowAtomic(t *testing.T) {
	h := relaytest.New(t, env, true)
	code, _, errOut := runCLI(t, "run", "--database-url", h.URL, "--nats-url", h.NATS.URL(), "--atomic-transactions", "--metrics-addr", "")
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1] // the log lines of start-up come before
	if code != 1 || !strings.HasPrefix(last, "cdcrelay: stream bus does not allow atomic batch publishing") ||
		!strings.Contains(last, "set allow_atomic: true in the definition of stream bus") ||
		!strings.Contains(last, "cdcrelay stream ensure --atomic-transactions --stream bus") {
		t.Fatalf("run on a stream without allow_atomic: status %d, stderr %q", code, errOut)
	}
	code, out, errOut := runCLI(t, "stream", "ensure", "--nats-url", h.NATS.URL(), "--subjects", "orders.>,users.>,w.>", "--atomic-transactions")
	if code != 0 || !strings.Contains(out, "batched and atomic publishing allowed") {
		t.Fatalf("stream ensure: status %d, stdout %q, stderr %q", code, out, errOut)
	}
	var seq int
	relaytest.WriteN(t, h, 0, 10, &seq)
	p := startCLI(t, h.RunArgs("--atomic-transactions", "--metrics-addr", "")...)
	h.WaitAllDelivered(time.Minute)
	p.stop(t)
	if n := len(testenv.StreamMessages(t, h.NATS.URL(), "bus")); n != 10 {
		t.Fatalf("stream has %d messages, want 10", n)
	}
}
