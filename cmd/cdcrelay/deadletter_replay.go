package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

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
// Then replay waits until the relay flipped the new row and looks for the
// event in the stream. If the relay dead-lettered it again (a dead letter is
// recorded once per event_id, so the table would not say so), replayed_at is
// cleared and replay fails, so the dead letter shows as waiting again.

const replayRowSQL = `SELECT ` + deadLetterColumns + ` FROM bus.dead_letter WHERE event_id = $1::uuid FOR UPDATE`

// replayResult is what happened to one event.
type replayResult struct {
	deadLetter
	outboxID int64
	seq      uint64 // stream sequence, once seen there
}

func deadletterReplay(c *cli.Context) error {
	ids := c.StringSlice("id")
	if len(ids) == 0 && !c.Bool("all") {
		return errors.New("--id or --all is required: name the events to replay (see `cdcrelay deadletter list`)")
	}
	if len(ids) > 0 && c.Bool("all") {
		return errors.New("--id and --all both set: choose one")
	}
	conn, err := connectDB(c, "cdcrelay deadletter replay")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(c.Context))
	nc, err := connectNATS(c, "cdcrelay deadletter replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	stream, err := js.Stream(c.Context, c.String("stream"))
	if err != nil {
		return fmt.Errorf("stream %s: %w", c.String("stream"), err)
	}

	if c.Bool("all") {
		rows, err := conn.Query(c.Context, `SELECT event_id::text FROM bus.dead_letter WHERE replayed_at IS NULL ORDER BY dead_lettered_at, event_id`)
		if err != nil {
			return fmt.Errorf("read bus.dead_letter: %w", err)
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("read bus.dead_letter: %w", err)
		}
		if len(ids) == 0 {
			_, err := fmt.Fprintln(c.App.Writer, "no dead letters waiting for a replay")
			return err
		}
	}

	out := c.App.Writer
	var failed []string
	for _, id := range ids {
		r, err := replayOne(c.Context, conn, js, stream, id, c.String("stream"))
		if err == nil && c.Duration("wait") > 0 {
			err = confirmReplay(c.Context, conn, stream, &r, c.Duration("wait"))
		}
		switch {
		case err != nil:
			fmt.Fprintf(out, "%s: %v\n", id, err)
			failed = append(failed, id)
		case r.seq > 0:
			fmt.Fprintf(out, "%s: replayed (%s) as outbox row %d: in stream %s at sequence %d\n", id, r.Subject, r.outboxID, c.String("stream"), r.seq)
		default:
			fmt.Fprintf(out, "%s: replayed (%s) as outbox row %d: the relay publishes it next\n", id, r.Subject, r.outboxID)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d dead letter(s) not replayed", len(failed), len(ids))
	}
	return nil
}

// replayOne puts the event back into the outbox (see the notes above).
func replayOne(ctx context.Context, conn *pgx.Conn, js jetstream.JetStream, stream jetstream.Stream, id, streamName string) (replayResult, error) {
	var r replayResult
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, replayRowSQL, id)
		if err != nil {
			return err
		}
		d, err := pgx.CollectExactlyOneRow(rows, scanDeadLetter)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return errors.New("no such dead letter")
		case err != nil:
			return err
		case d.ReplayedAt != nil:
			return fmt.Errorf("already replayed at %s", d.ReplayedAt.UTC().Format(time.RFC3339))
		}
		r.deadLetter = d
		// The relay would dead-letter it again at once: say what to fix.
		if name, err := js.StreamNameBySubject(ctx, d.Subject); err != nil || name != streamName {
			return fmt.Errorf("stream %s does not capture subject %s: add it first (cdcrelay stream ensure --subjects ...)", streamName, d.Subject)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("read stream %s: %w", streamName, err)
		}
		r.seq = info.State.LastSeq // where to look for it from; replaced once found
		if _, err := tx.Exec(ctx, `DELETE FROM bus.outbox WHERE event_id = $1::uuid AND published_to_nats`, id); err != nil {
			return fmt.Errorf("delete the original outbox row: %w", err)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO bus.outbox (event_id, subject, payload, headers) VALUES ($1::uuid, $2, $3, $4)
RETURNING id`, id, d.Subject, d.Payload, []byte(d.Headers)).Scan(&r.outboxID); err != nil {
			return fmt.Errorf("insert into bus.outbox: %w", err)
		}
		_, err = tx.Exec(ctx, `UPDATE bus.dead_letter SET replayed_at = now() WHERE event_id = $1::uuid`, id)
		return err
	})
	if err != nil {
		return r, err
	}
	return r, nil
}

// confirmReplay waits until the relay flipped the new outbox row, then finds
// the event in the stream. When it is not there the relay dead-lettered it
// again: replayed_at is cleared so that it shows as waiting.
func confirmReplay(ctx context.Context, conn *pgx.Conn, stream jetstream.Stream, r *replayResult, wait time.Duration) error {
	from := r.seq + 1
	r.seq = 0
	deadline := time.Now().Add(wait)
	for {
		var flipped bool
		err := conn.QueryRow(ctx, `SELECT published_to_nats FROM bus.outbox WHERE id = $1`, r.outboxID).Scan(&flipped)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("queued as outbox row %d, but reading it back failed: %w", r.outboxID, err)
		}
		if flipped || errors.Is(err, pgx.ErrNoRows) { // published, or already pruned
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queued as outbox row %d, but no relay published it within %v: is `cdcrelay run` running? (see `cdcrelay status`)", r.outboxID, wait)
		}
		if !backoff.Sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	seq, err := findInStream(ctx, stream, r.Subject, r.EventID, from)
	if err != nil {
		return fmt.Errorf("published as outbox row %d, but reading the stream failed: %w", r.outboxID, err)
	}
	if seq == 0 {
		if _, err := conn.Exec(ctx, `UPDATE bus.dead_letter SET replayed_at = NULL WHERE event_id = $1::uuid`, r.EventID); err != nil {
			return fmt.Errorf("dead-lettered again, and clearing replayed_at failed: %w", err)
		}
		return errors.New("dead-lettered again by the relay (if you just changed the stream, the relay reads its subjects when it (re)connects: restart it, then replay again)")
	}
	r.seq = seq
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
