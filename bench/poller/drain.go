package poller

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	selectBatch = `SELECT id, event_id, subject, payload, headers FROM bus.outbox
WHERE published_to_nats = false ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`
	flipBatch = `UPDATE bus.outbox SET published_to_nats = true, published_at = now() WHERE id = ANY($1)`
)

// publishError marks a batch JetStream did not fully acknowledge: worth a
// retry, not a reason to give up the lead.
type publishError struct{ err error }

func (e *publishError) Error() string { return "publish batch: " + e.err.Error() }
func (e *publishError) Unwrap() error { return e.err }

// drainer runs batch transactions on the leader's connection, reusing its
// slices from one batch to the next.
type drainer struct {
	conn *pgx.Conn
	js   jetstream.JetStream
	cfg  *Config

	ids     []int64
	futures []jetstream.PubAckFuture
}

// cycle publishes and flips one batch in one transaction and returns its
// size. Two round trips to Postgres: BEGIN with the select, then the flip
// with COMMIT, each pipelined as one batch.
func (d *drainer) cycle(ctx context.Context) (int, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(selectBatch, d.cfg.BatchSize)
	br := d.conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return 0, fmt.Errorf("begin: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return 0, d.abort(ctx, fmt.Errorf("select batch: %w", err))
	}
	d.ids, d.futures = d.ids[:0], d.futures[:0]
	var (
		id      int64
		eventID [16]byte
		subject string
		payload []byte
		headers []byte
	)
	// Publishing while the rows stream in overlaps JetStream's work with
	// Postgres sending the rest of the batch.
	_, err = pgx.ForEachRow(rows, []any{&id, &eventID, &subject, &payload, &headers}, func() error {
		m := &nats.Msg{Subject: subject, Data: payload}
		if len(headers) > 0 {
			h, err := decodeHeaders(headers)
			if err != nil {
				return fmt.Errorf("outbox row %d: %w", id, err)
			}
			m.Header = h
		}
		f, err := d.js.PublishMsgAsync(m, jetstream.WithMsgID(uuid.UUID(eventID).String()))
		if err != nil {
			return &publishError{err}
		}
		d.ids = append(d.ids, id)
		d.futures = append(d.futures, f)
		return nil
	})
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("select batch: %w", cerr)
	}
	if err == nil {
		err = d.awaitAcks(ctx)
	}
	if err != nil {
		return 0, d.abort(ctx, err)
	}
	if len(d.ids) == 0 {
		if _, err := d.conn.Exec(ctx, "COMMIT"); err != nil {
			return 0, fmt.Errorf("commit empty batch: %w", err)
		}
		return 0, nil
	}
	b = &pgx.Batch{}
	b.Queue(flipBatch, d.ids)
	b.Queue("COMMIT")
	if err := d.conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, d.abort(ctx, fmt.Errorf("flip batch: %w", err))
	}
	return len(d.ids), nil
}

// awaitAcks waits for every ack of the batch, in order; the publishes were
// all in flight at once.
func (d *drainer) awaitAcks(ctx context.Context) error {
	timer := time.NewTimer(d.cfg.AckTimeout)
	defer timer.Stop()
	for _, f := range d.futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return &publishError{err}
		case <-timer.C:
			return &publishError{fmt.Errorf("no ack within %v", d.cfg.AckTimeout)}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// abort rolls the batch back, releasing its row locks, and returns cause.
func (d *drainer) abort(ctx context.Context, cause error) error {
	if _, err := d.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
		return fmt.Errorf("%w (and rollback: %v)", cause, err)
	}
	return cause
}

// decodeHeaders turns the outbox's headers column (an object of strings or
// arrays of strings) into NATS headers.
func decodeHeaders(b []byte) (nats.Header, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}
	h := make(nats.Header, len(raw))
	for name, v := range raw {
		var one string
		if err := json.Unmarshal(v, &one); err == nil {
			h[name] = []string{one}
			continue
		}
		var many []string
		if err := json.Unmarshal(v, &many); err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		h[name] = many
	}
	return h, nil
}
