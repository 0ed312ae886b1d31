package outboxtoinbox

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/relay"
)

// runningRelay is cdcrelay running in this process, as `cdcrelay run` would.
type runningRelay struct {
	cancel context.CancelFunc
	done   chan error
}

// startRelay starts the relay on the test's database and NATS server,
// streaming into the stream "bus". Stop it with stop; the test's cleanup
// stops it otherwise.
func startRelay(t *testing.T, databaseURL, natsURL string) *runningRelay {
	t.Helper()
	cfg := relay.Config{
		DatabaseURL: databaseURL,
		NATSURL:     natsURL,
		Publish:     publish.Config{Stream: "bus"},
		Election: election.Config{
			LockID:   rand.Int64N(1 << 40), // tests share a cluster; locks are per database anyway
			Interval: 100 * time.Millisecond,
		},
		StatusInterval:    time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	r, err := relay.New(cfg, log)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &runningRelay{cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	t.Cleanup(func() { run.stop(t) })
	return run
}

// stop shuts the relay down as SIGTERM does and waits for it.
func (r *runningRelay) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil && err != context.Canceled {
			t.Errorf("relay run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("relay did not stop within a minute")
	}
}
