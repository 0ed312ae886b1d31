package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/internal/backoff"
)

// Replay semantics. A dead letter is not published to JetStream directly:
// the relay chains its publishes with Nats-Expected-Last-Msg-Id (see
// publish/pipeline.go), and a message slipped into the stream from outside
// would break that chain and force the relay into recovery. Instead the event
// goes back into bus.outbox, in one transaction that also marks the dead
// letter replayed:
//
//   - the dead letter row is locked and must not be replayed yet, so two
//     replays cannot both insert the event;
//   - the original outbox row, if retention has not pruned it, is deleted
//     (event_id is unique, and the relay had flipped it when it
//     dead-lettered it; deletes are not published);
//   - a new outbox row is inserted with the same event_id, subject, payload
//     and headers (a new id, created now): the relay streams it in commit
//     order and publishes it with Nats-Msg-Id = event_id. JetStream never
//     stored the event under that id, so it is not dropped as a duplicate.
//
// Then Confirm waits until the relay flipped the new row and looks for the
// event in the stream. If the relay dead-lettered it again (a dead letter is
// recorded once per event_id, so the table would not say so), replayed_at is
// cleared and Confirm fails, so the dead letter shows as waiting again.

// ErrNotFound is returned by Replay for an event id with no dead letter.
var ErrNotFound = errors.New("no such dead letter")

// ErrDeadLetteredAgain is returned by Confirm when the relay published the
// replayed row but the event is not in the stream: the relay refused it
// again. The dead letter is waiting again.
var ErrDeadLetteredAgain = errors.New("dead-lettered again by the relay")

// AlreadyReplayedError is returned by Replay for a dead letter replayed
// before.
type AlreadyReplayedError struct{ At time.Time }

func (e *AlreadyReplayedError) Error() string {
	return "already replayed at " + e.At.UTC().Format(time.RFC3339)
}

// NotCapturedError is returned by Replay when the stream does not capture
// the dead letter's subject: the relay would refuse it again at once.
type NotCapturedError struct{ Stream, Subject string }

func (e *NotCapturedError) Error() string {
	return fmt.Sprintf("stream %s does not capture subject %s", e.Stream, e.Subject)
}

// NotPublishedError is returned by Confirm when no relay published the
// replayed row within the wait.
type NotPublishedError struct {
	OutboxID int64
	Wait     time.Duration
}

func (e *NotPublishedError) Error() string {
	return fmt.Sprintf("queued as outbox row %d, but no relay published it within %v", e.OutboxID, e.Wait)
}

// Replayed is a dead letter put back into bus.outbox.
type Replayed struct {
	Row
	// Row.OutboxID is the original row; Requeued the one inserted now.
	Requeued int64
	// Seq is the event's stream sequence once Confirm found it there.
	Seq uint64
	// from is the stream's last sequence before the replay: the event is
	// looked for after it.
	from uint64
}

// Beginner is a DB that begins transactions (a *pgx.Conn or *pgxpool.Pool).
type Beginner interface {
	DB
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Replay puts the dead letter of event id back into bus.outbox (see the
// notes above), for the relay to publish to stream. It checks first that
// stream captures the event's subject.
func Replay(ctx context.Context, db Beginner, js jetstream.JetStream, stream jetstream.Stream, id string) (Replayed, error) {
	var r Replayed
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM bus.dead_letter WHERE event_id = $1::uuid FOR UPDATE`, id)
		if err != nil {
			return err
		}
		d, err := pgx.CollectExactlyOneRow(rows, scan)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case d.ReplayedAt != nil:
			return &AlreadyReplayedError{At: *d.ReplayedAt}
		}
		r.Row = d
		streamName := stream.CachedInfo().Config.Name
		if name, err := js.StreamNameBySubject(ctx, d.Subject); err != nil || name != streamName {
			return &NotCapturedError{Stream: streamName, Subject: d.Subject}
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("read stream %s: %w", streamName, err)
		}
		r.from = info.State.LastSeq
		if _, err := tx.Exec(ctx, `DELETE FROM bus.outbox WHERE event_id = $1::uuid AND published_to_nats`, id); err != nil {
			return fmt.Errorf("delete the original outbox row: %w", err)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO bus.outbox (event_id, subject, payload, headers) VALUES ($1::uuid, $2, $3, $4)
RETURNING id`, id, d.Subject, d.Payload, []byte(d.Headers)).Scan(&r.Requeued); err != nil {
			return fmt.Errorf("insert into bus.outbox: %w", err)
		}
		_, err = tx.Exec(ctx, `UPDATE bus.dead_letter SET replayed_at = now() WHERE event_id = $1::uuid`, id)
		return err
	})
	return r, err
}

// Confirm waits up to wait until the relay flipped the replayed outbox row,
// then finds the event in stream and sets r.Seq. When it is not there the
// relay dead-lettered it again: replayed_at is cleared so that it shows as
// waiting, and Confirm returns ErrDeadLetteredAgain.
func Confirm(ctx context.Context, db DB, stream jetstream.Stream, r *Replayed, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		var flipped bool
		err := db.QueryRow(ctx, `SELECT published_to_nats FROM bus.outbox WHERE id = $1`, r.Requeued).Scan(&flipped)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("queued as outbox row %d, but reading it back failed: %w", r.Requeued, err)
		}
		if flipped || errors.Is(err, pgx.ErrNoRows) { // published, or already pruned
			break
		}
		if time.Now().After(deadline) {
			return &NotPublishedError{OutboxID: r.Requeued, Wait: wait}
		}
		if !backoff.Sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	seq, err := findInStream(ctx, stream, r.Subject, r.EventID, r.from+1)
	if err != nil {
		return fmt.Errorf("published as outbox row %d, but reading the stream failed: %w", r.Requeued, err)
	}
	if seq == 0 {
		if _, err := db.Exec(ctx, `UPDATE bus.dead_letter SET replayed_at = NULL WHERE event_id = $1::uuid`, r.EventID); err != nil {
			return fmt.Errorf("%w, and clearing replayed_at failed: %w", ErrDeadLetteredAgain, err)
		}
		return ErrDeadLetteredAgain
	}
	r.Seq = seq
	return nil
}

// findInStream returns the stream sequence of the message with the event id
// on subject at or after from, or 0 when there is none.
func findInStream(ctx context.Context, stream jetstream.Stream, subject, eventID string, from uint64) (uint64, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	end := info.State.LastSeq
	if end < from {
		return 0, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
		HeadersOnly:    true,
	})
	if err != nil {
		return 0, err
	}
	it, err := cons.Messages()
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(2 * time.Second))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			return 0, nil // nothing more on the subject
		}
		if err != nil {
			return 0, err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return 0, err
		}
		if msg.Headers().Get(jetstream.MsgIDHeader) == eventID {
			return meta.Sequence.Stream, nil
		}
		if meta.Sequence.Stream >= end {
			return 0, nil
		}
	}
}
