package publish_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/publish"
)

// foreignPublisher publishes market data into the stream, fire and forget,
// about every millisecond until stop is closed; acked counts what
// JetStream stored.
func foreignPublisher(url string, stop <-chan struct{}) (acked *atomic.Int64, done <-chan error) {
	acked = new(atomic.Int64)
	errs := make(chan error, 1)
	go func() {
		errs <- func() error {
			nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc,
				jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) {}),
				jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) { acked.Add(1) }))
			if err != nil {
				return err
			}
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return nil
				case <-tick.C:
				}
				// Errors while NATS restarts are ignored: fire and forget.
				_, _ = js.PublishAsync(fmt.Sprintf("a.mkt.btc.%d", i%3), []byte("tick"))
			}
		}()
	}()
	return acked, errs
}

// The relay shares its stream with another publisher that sends about
// 1,000 messages/s throughout a 20,000-event run, and NATS restarts in the
// middle: every event is stored once, in order, between the foreign
// messages, and the foreign messages cost no recoveries.
func TestSharedStreamWithForeignPublisherAndRestart(t *testing.T) {
	f := newFixture(t, publish.Config{MaxInFlight: 2048, AckTimeout: 2 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}, jetstream.StreamConfig{})
	stop := make(chan struct{})
	foreign, foreignDone := foreignPublisher(f.url, stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if foreign.Load() < 100 {
			return errors.New("waiting for the foreign publisher")
		}
		return nil
	})

	const n = 20000
	evs := events(t, n, func(i int) string { return fmt.Sprintf("a.orders.%d", i%5) })
	submitted := make(chan error, 1)
	go func() { submitted <- submit(f.pipe, evs) }()
	waitResolved(t, f, n*4/10)
	f.ns.Restart(t)
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	waitResolved(t, f, n)
	// Foreign messages after the last event too.
	after := foreign.Load()
	testenv.Eventually(t, 10*time.Second, func() error {
		if foreign.Load() < after+100 {
			return errors.New("waiting for foreign messages after the run")
		}
		return nil
	})
	close(stop)
	if err := <-foreignDone; err != nil {
		t.Fatal(err)
	}

	var ours []testenv.Msg
	foreignStored := 0
	for _, m := range testenv.StreamMessages(t, f.url, "bus") {
		if strings.HasPrefix(m.Subject, "a.mkt.") {
			foreignStored++
			continue
		}
		ours = append(ours, m)
	}
	checkMessages(t, ours, evs)
	s := statsOf(f.pipe)
	t.Logf("%d foreign messages stored beside %d events; stats %+v", foreignStored, n, s)
	if foreignStored < 1000 {
		t.Fatalf("only %d foreign messages in the stream", foreignStored)
	}
	// The restart costs a recovery or two; a loop on foreign messages
	// would cost hundreds.
	if s.Recoveries > 5 {
		t.Fatalf("%d recoveries: %q", s.Recoveries, f.lastRetries(10))
	}
}

// A stream that does not allow batched publishing is refused with an error
// that names the option; `stream ensure` turns it on.
func TestStreamWithoutBatchingIsRefused(t *testing.T) {
	nc, js := connect(t, env.NATS(t).URL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "bus", Subjects: []string{"a.>"}}); err != nil {
		t.Fatal(err)
	}
	var off *publish.BatchingDisabledError
	if err := publish.CheckStream(ctx, js, "bus"); !errors.As(err, &off) || !strings.Contains(err.Error(), "allow_batched") {
		t.Fatalf("check stream: %v, want a BatchingDisabledError naming allow_batched", err)
	}
	p, err := publish.New(nc, publish.Config{Stream: "bus"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); !errors.As(err, &off) {
		p.Close()
		t.Fatalf("start: %v, want a BatchingDisabledError", err)
	}
	if _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: "bus", Subjects: []string{"a.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := publish.CheckStream(ctx, js, "bus"); err != nil {
		t.Fatalf("after stream ensure: %v", err)
	}
}
