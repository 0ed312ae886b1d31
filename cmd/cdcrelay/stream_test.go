package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// `stream ensure` on the bus another team defined: it adds the relay's
// subject and says what it changed, keeps the stream's own limits unless
// one is given (on the command line or in the config file), and changes
// nothing the second time.
func TestStreamEnsureOnASharedStream(t *testing.T) {
	url := env.NATS(t).URL()
	_, js := testenv.JetStream(t, url)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "bus", Subjects: []string{"orders.>", "audit.>"}, MaxBytes: 2 << 30, AllowBatchPublish: true,
	}); err != nil {
		t.Fatal(err)
	}
	ensure := func(want string, args ...string) {
		t.Helper()
		code, out, errOut := runCLI(t, append([]string{"stream", "ensure", "--nats-url", url}, args...)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("stream ensure %v: status %d, stdout %q, stderr %q; want %q", args, code, out, errOut, want)
		}
	}
	ensure("stream bus updated (subjects orders.>,audit.>,refunds.> (added refunds.>)): subjects orders.>,audit.>,refunds.>, max age 0s, max bytes 2147483648,",
		"--subjects", "orders.>,refunds.>")
	config := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(config, []byte("subjects: orders.>\nmax-bytes: 1GiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ensure("stream bus updated (max bytes 1073741824 (was 2147483648)): subjects orders.>,audit.>,refunds.>,", "--config", config)
	ensure("stream bus unchanged: subjects orders.>,audit.>,refunds.>,", "--subjects", "orders.>,refunds.>")
}
