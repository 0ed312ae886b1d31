package e2e_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// SIGKILL in the middle of a 50,000-event run, then a restart: nothing
// missing, nothing twice, order kept.
func TestSIGKILLMidRunLosesNothing(t *testing.T) {
	h := relaytest.New(t, env, true)
	h.Cfg.Election.LockID = rand.Int64N(1 << 40)
	p := startProc(t, "relay-1", h.RunArgs())
	testenv.Eventually(t, time.Minute, func() error {
		if !slotActive(h) {
			return errors.New("relay not streaming yet")
		}
		return nil
	})
	w := startWriters(t, h, 50000)
	testenv.Eventually(t, 2*time.Minute, func() error {
		if n := len(h.CommittedIDs()); n < 15000 {
			return fmt.Errorf("%d events written", n)
		}
		return nil
	})
	p.kill()
	p2 := startProc(t, "relay-2", h.RunArgs())
	w.wait(t)
	h.WaitAllDelivered(3 * time.Minute)
	msgs := h.CheckStream()
	if len(msgs) != 50000 {
		t.Fatalf("stream has %d events, want 50000", len(msgs))
	}
	p2.terminate(t, 30*time.Second)
}
