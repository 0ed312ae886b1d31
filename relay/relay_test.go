package relay_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

func TestConcurrentWritersDeliveredOnceInCommitOrder(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	relaytest.Writers(ctx, t, 8, relaytest.MixedWriter(h, 1250))
	end := h.CurrentLSN()

	h.WaitAllDelivered(time.Minute)
	msgs := h.CheckStream()
	if len(msgs) != 10000 {
		t.Fatalf("stream has %d events, want 10000", len(msgs))
	}
	h.CheckRowsMatchStream(msgs)
	h.WaitConfirmedPast(end)
}

func TestNATSOutageKeepsReplicationAndLosesNothing(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var written atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- relaytest.RunWriters(ctx, 4, func(ctx context.Context, w int, seq *int) error {
			for ctx.Err() == nil {
				*seq++
				if _, err := outbox.Publish(ctx, h.Pool, fmt.Sprintf("w.%d", w), relaytest.Payload(w, *seq)); err != nil {
					return err
				}
				written.Add(1)
			}
			return nil
		})
	}()
	testenv.Eventually(t, time.Minute, func() error {
		if written.Load() < 2000 {
			return errors.New("writers warming up")
		}
		return nil
	})
	pidBefore := h.WalsenderPID()
	h.NATS.Stop(t)
	before := written.Load()
	// The outage itself is the scenario, longer than wal_sender_timeout (20 s
	// in the test cluster): a relay that stops answering the walsender while
	// back-pressured would be disconnected.
	outage := time.NewTimer(30 * time.Second)
	<-outage.C
	if during := written.Load() - before; during < 100 {
		t.Errorf("writers wrote only %d events while NATS was down: they must not wait on NATS", during)
	}
	if pid := h.WalsenderPID(); pid != pidBefore {
		t.Errorf("walsender pid changed from %d to %d during the NATS outage: the replication connection was dropped", pidBefore, pid)
	}
	h.NATS.Start(t)
	testenv.Eventually(t, time.Minute, func() error {
		if written.Load() < before+4000 {
			return errors.New("writing on after the outage")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.WaitAllDelivered(2 * time.Minute)
	h.CheckRowsMatchStream(h.CheckStream())
}

func TestSlotDroppedWhileDownIsRecreatedAndBackfilled(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 1, 500, &seq)
	h.WaitAllDelivered(time.Minute)
	r.Stop(t)
	// The walsender lets go of the slot a moment after the relay disconnects.
	testenv.Eventually(t, 10*time.Second, func() error {
		_, err := h.Pool.Exec(context.Background(), `SELECT pg_drop_replication_slot('cdcrelay')`)
		return err
	})
	relaytest.WriteN(t, h, 1, 700, &seq)
	r = h.Start()
	h.WaitStreaming(r)
	relaytest.WriteN(t, h, 1, 300, &seq)
	h.WaitAllDelivered(time.Minute)
	if msgs := h.CheckStream(); len(msgs) != 1500 {
		t.Fatalf("stream has %d events, want 1500", len(msgs))
	}
}

// A database a poller drained until now: an outbox with its own column
// order, an extra column, rows already published by the poller (which must
// not be sent again) and rows it had not published yet.
func TestTakesOverPollerEraOutbox(t *testing.T) {
	h := relaytest.New(t, env, false)
	ctx := context.Background()
	_, err := h.Pool.Exec(ctx, `
CREATE SCHEMA bus;
CREATE TABLE bus.outbox (
	id bigserial PRIMARY KEY,
	tenant text,
	payload bytea NOT NULL,
	subject text NOT NULL,
	published_to_nats boolean NOT NULL DEFAULT false,
	created_at timestamptz DEFAULT now()
);
CREATE INDEX outbox_unpublished ON bus.outbox (id) WHERE published_to_nats = false;
INSERT INTO bus.outbox (tenant, payload, subject, published_to_nats)
SELECT 't', 'old', 'orders.old', true FROM generate_series(1, 300);
INSERT INTO bus.outbox (tenant, payload, subject)
SELECT 't', int8send(g) || 'pending'::bytea, 'orders.pending' FROM generate_series(1, 1200) g;
`)
	if err != nil {
		t.Fatal(err)
	}
	h.Migrate()
	r := h.Start()
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 2, 400, &seq)
	h.WaitAllDelivered(time.Minute)

	msgs := testenv.StreamMessages(t, h.NATS.URL(), "bus")
	if len(msgs) != 1600 {
		t.Fatalf("stream has %d events, want the 1200 the poller left plus 400 new", len(msgs))
	}
	for i, m := range msgs {
		if m.Subject == "orders.old" {
			t.Fatalf("message %d: an event the poller had published was sent again", i)
		}
		if i < 1200 && (m.Subject != "orders.pending" || !strings.HasSuffix(string(m.Data), "pending")) {
			t.Fatalf("message %d: %s %q, want the backlog first, in id order", i, m.Subject, m.Data)
		}
	}
}

func TestQuietOutboxBusyDatabaseKeepsSlotCurrent(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	ctx := context.Background()
	if _, err := h.Pool.Exec(ctx, `CREATE TABLE busy (id bigserial PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	start := h.CurrentLSN()
	for i := 0; i < 20; i++ {
		if _, err := h.Pool.Exec(ctx, `INSERT INTO busy (v) SELECT repeat('x', 200) FROM generate_series(1, 10000)`); err != nil {
			t.Fatal(err)
		}
	}
	end := h.CurrentLSN()
	if end-start < 16<<20 {
		t.Fatalf("wrote only %d bytes of WAL", end-start)
	}
	// Without the idle advance the slot would stay at start, pinning all of it.
	h.WaitConfirmedPast(end)
}

func TestUnboundSubjectIsDeadLetteredAndLaterEventsFlow(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	ctx := context.Background()
	bad, err := outbox.Publish(ctx, h.Pool, "nostream.here", []byte("lost?"))
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	relaytest.WriteN(t, h, 3, 50, &seq)
	h.WaitAllDelivered(time.Minute)

	var reason string
	if err := h.Pool.QueryRow(ctx, `SELECT error FROM bus.dead_letter WHERE event_id = $1`, bad).Scan(&reason); err != nil {
		t.Fatalf("dead letter for %v: %v", bad, err)
	}
	if !strings.Contains(reason, "no stream captures subject") {
		t.Fatalf("dead letter reason %q", reason)
	}
	if msgs := testenv.StreamMessages(t, h.NATS.URL(), "bus"); len(msgs) != 50 {
		t.Fatalf("stream has %d events, want the 50 after the dead letter", len(msgs))
	}
}

// An event with an empty payload and a "Status" header would be stored but
// never delivered (nats.go's consumers take it for a server status
// message): it is dead-lettered, saying why, and later events flow, whether
// it comes through the stream or, written before the first start, through
// the backfill (which the review found skipped the check).
func TestStatusHeaderWithoutPayloadIsDeadLettered(t *testing.T) {
	for _, backfilled := range []bool{false, true} {
		t.Run(fmt.Sprintf("backfilled=%v", backfilled), func(t *testing.T) { statusWithoutPayload(t, backfilled) })
	}
}

func statusWithoutPayload(t *testing.T, backfilled bool) {
	h := relaytest.New(t, env, true)
	ctx := context.Background()
	var bad string
	insert := func() {
		if err := h.Pool.QueryRow(ctx, `INSERT INTO bus.outbox (subject, payload, headers)
VALUES ('orders.status', '', '{"Status": "shipped"}') RETURNING event_id::text`).Scan(&bad); err != nil {
			t.Fatal(err)
		}
	}
	if backfilled {
		insert()
	}
	r := h.Start()
	h.WaitStreaming(r)
	if !backfilled {
		insert()
	}
	seq := 0
	relaytest.WriteN(t, h, 3, 20, &seq)
	h.WaitAllDelivered(time.Minute)
	var reason, headers string
	if err := h.Pool.QueryRow(ctx, `SELECT error, headers::text FROM bus.dead_letter WHERE event_id = $1::uuid`, bad).Scan(&reason, &headers); err != nil {
		t.Fatalf("backfilled %v: dead letter for %v: %v", backfilled, bad, err)
	}
	if !strings.Contains(reason, `"Status" header on an event with an empty payload`) || !strings.Contains(headers, "shipped") {
		t.Fatalf("backfilled %v: dead letter reason %q, headers %s", backfilled, reason, headers)
	}
	if msgs := testenv.StreamMessages(t, h.NATS.URL(), "bus"); len(msgs) != 20 {
		t.Fatalf("backfilled %v: stream has %d events, want the 20 after the dead letter", backfilled, len(msgs))
	}
	r.Stop(t)
}

// Graceful shutdown confirms what it flipped: a restart resends nothing.
func TestGracefulStopConfirmsAndResumes(t *testing.T) {
	h := relaytest.New(t, env, true)
	r := h.Start()
	h.WaitStreaming(r)
	seq := 0
	relaytest.WriteN(t, h, 4, 1000, &seq)
	h.WaitAllDelivered(time.Minute)
	end := h.CurrentLSN()
	h.WaitConfirmedPast(end)
	r.Stop(t)
	if got, _ := h.Slot(); got < end {
		t.Fatalf("after stop the slot confirmed %s, want ≥ %s", got, end)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, active := h.Slot(); active {
			return errors.New("slot still active after the relay stopped")
		}
		return nil
	})
	r = h.Start()
	h.WaitStreaming(r)
	relaytest.WriteN(t, h, 4, 200, &seq)
	h.WaitAllDelivered(time.Minute)
	if msgs := h.CheckStream(); len(msgs) != 1200 {
		t.Fatalf("stream has %d events, want 1200", len(msgs))
	}
}
