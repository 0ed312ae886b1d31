package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox"
)

// Under --atomic-transactions, a relay killed with SIGKILL, and NATS
// restarted, at random points of a run of multi-event transactions: read
// after each fault, before the relay runs again, the stream holds every
// transaction entirely or not at all; in the end every event once, in
// commit order.
func TestAtomicTransactionsAcrossSIGKILLAndNATSRestart(t *testing.T) {
	h := relaytest.New(t, env, true)
	args := h.RunArgs("--atomic-transactions", "--ensure-stream", "--subjects", "orders.>,users.>,w.>")
	rng := rand.New(rand.NewPCG(16, uint64(time.Now().UnixNano())))
	const txs = 1500
	// A relay creates the slot first and completes its (empty) backfill:
	// rows written before that are backfilled, and the backfill cannot know
	// their transactions. Killed after creating the slot but before marking
	// the backfill done, it leaves a slot the next relay must not trust, and
	// that relay backfills the rows written meanwhile one by one.
	p := startProc(t, "relay-0", args)
	testenv.Eventually(t, time.Minute, func() error {
		if !h.SlotTrusted() {
			return errors.New("relay not streaming from a backfilled slot yet")
		}
		return nil
	})
	p.kill()
	written := make(chan int, txs) // transactions committed so far
	writeErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { writeErr <- writeTransactions(ctx, h, txs, written) }()
	committed := func() int { return len(written) }

	// Each round lets a backlog build while no relay runs, starts one, and
	// faults it at a random point of draining that backlog.
	stored := 0
	for round := 1; round <= 6; round++ {
		at := round * txs / 7
		testenv.Eventually(t, 2*time.Minute, func() error {
			if n := committed(); n < at {
				return fmt.Errorf("%d transactions written, waiting for %d", n, at)
			}
			return nil
		})
		p = startProc(t, fmt.Sprintf("relay-%d", round), args)
		point := stored + 1 + rng.IntN(max(1, at-stored))/3
		// Polled without pause: the backlog drains in a fraction of a second.
		for deadline := time.Now().Add(2 * time.Minute); streamCount(t, h) < point; {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: fewer than %d transactions in the stream after 2 minutes", round, point)
			}
		}
		natsFault := round%2 == 0
		if natsFault {
			h.NATS.Stop(t)
		}
		p.kill()
		if natsFault {
			h.NATS.Start(t)
		}
		stored = checkWholeTransactions(t, h)
		t.Logf("round %d (nats restart %v): %d of %d written transactions in the stream", round, natsFault, stored, committed())
	}
	p = startProc(t, "relay-last", args)
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	h.WaitAllDelivered(3 * time.Minute)
	h.CheckStream()
	if stored := checkWholeTransactions(t, h); stored != txs {
		t.Fatalf("%d of %d transactions in the stream", stored, txs)
	}
	p.terminate(t, 30*time.Second)
}

// streamCount is the number of transactions in the stream, from its last
// message's subject: they are stored whole and in order.
func streamCount(t *testing.T, h *relaytest.Harness) int {
	t.Helper()
	nc, js := testenv.JetStream(t, h.NATS.URL())
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "bus")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, "w.>")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	k, _ := strconv.Atoi(strings.Split(m.Subject, ".")[1])
	return k
}

// writeTransactions commits n transactions of 2-40 events, one after the
// other; event i of transaction k of size s is on subject w.<k>.<s>.
func writeTransactions(ctx context.Context, h *relaytest.Harness, n int, written chan<- int) error {
	evs := make([]outbox.Event, 0, 40)
	for k := 1; k <= n; k++ {
		size := 2 + (k*7)%39
		evs = evs[:0]
		for i := 1; i <= size; i++ {
			evs = append(evs, outbox.Event{Subject: fmt.Sprintf("w.%d.%d", k, size), Payload: relaytest.Payload(k, i)})
		}
		tx, err := h.Pool.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := outbox.PublishBatch(ctx, tx, evs); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		written <- k
	}
	return nil
}

// checkWholeTransactions reads the stream and fails unless every
// transaction in it is there entirely, its events in order, and
// transactions are in commit order. It returns how many are there. A
// transaction cut short at the stream's end is read again: nats-server
// isolates an atomic commit from direct gets only, so a read can see a
// batch the killed relay sent while the server is still storing it; that
// gap closes by itself within moments. One that stays, or one in the
// middle, is a failure.
func checkWholeTransactions(t *testing.T, h *relaytest.Harness) int {
	t.Helper()
	n := 0
	var tail *partialTail
	testenv.Eventually(t, 5*time.Second, func() error {
		var err error
		n, err = wholeTransactions(t, testenv.StreamMessages(t, h.NATS.URL(), "bus"))
		if err != nil && !errors.As(err, &tail) {
			t.Fatal(err)
		}
		return err
	})
	return n
}

// partialTail is a transaction cut short at the end of the stream.
type partialTail struct{ msg string }

func (e *partialTail) Error() string { return e.msg }

func wholeTransactions(t *testing.T, msgs []testenv.Msg) (int, error) {
	count := map[int]int{}
	size := map[int]int{}
	batch := map[int]string{} // the atomic batch of a transaction's last message, to tell why it is split
	last := 0
	for i, m := range msgs {
		parts := strings.Split(m.Subject, ".")
		if len(parts) != 3 {
			t.Fatalf("message %d: subject %s", i, m.Subject)
		}
		k, err1 := strconv.Atoi(parts[1])
		s, err2 := strconv.Atoi(parts[2])
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("message %d: subject %s: %v", i, m.Subject, err)
		}
		if k < last {
			t.Fatalf("message %d: transaction %d after %d: not in commit order", i, k, last)
		}
		last = k
		count[k]++
		size[k] = s
		batch[k] = fmt.Sprintf("batch %s message %s (commit %q)", m.Header.Get("Nats-Batch-Id"), m.Header.Get("Nats-Batch-Sequence"), m.Header.Get("Nats-Batch-Commit"))
	}
	for k, n := range count {
		if n != size[k] {
			msg := fmt.Sprintf("transaction %d: %d of its %d events in the stream; the last is %s", k, n, size[k], batch[k])
			if k == last {
				return 0, &partialTail{msg}
			}
			return 0, errors.New(msg)
		}
	}
	return len(count), nil
}
