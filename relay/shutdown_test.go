package relay_test

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/relay"
)

// A shutdown that arrives during the start-up checks (SIGTERM in a rolling
// restart, say) is a clean exit, not a failed start.
func TestShutdownDuringStartIsClean(t *testing.T) {
	h := relaytest.New(t, env, true)
	r, err := relay.New(h.Cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatalf("Run after a shutdown during start-up: %v", err)
	}
}
