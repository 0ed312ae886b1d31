package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/cdcrelay/cdcrelay/deadletter"
	"github.com/cdcrelay/cdcrelay/internal/backoff"
	"github.com/cdcrelay/cdcrelay/publish"
)

// deadletterReplay puts dead letters back into bus.outbox and, with --wait,
// confirms each reached the stream (see package deadletter).
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
	nc, js, err := connectJetStream(c, "cdcrelay deadletter replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	stream, err := js.Stream(c.Context, c.String("stream"))
	if err != nil {
		return fmt.Errorf("stream %s: %w", c.String("stream"), err)
	}

	if c.Bool("all") {
		if ids, err = deadletter.Waiting(c.Context, conn); err != nil {
			return err
		}
		if len(ids) == 0 {
			_, err := fmt.Fprintln(c.App.Writer, "no dead letters waiting for a replay")
			return err
		}
	}

	out := c.App.Writer
	var failed []string
	for _, id := range ids {
		r, err := replayOne(c.Context, conn, js, stream, id, c.Duration("wait"))
		switch {
		case err != nil:
			fmt.Fprintf(out, "%s: %s\n", id, replayAdvice(err))
			failed = append(failed, id)
		case r.Seq > 0:
			fmt.Fprintf(out, "%s: replayed (%s) as outbox row %d: in stream %s at sequence %d\n", id, r.Subject, r.Requeued, c.String("stream"), r.Seq)
		default:
			fmt.Fprintf(out, "%s: replayed (%s) as outbox row %d: the relay publishes it next\n", id, r.Subject, r.Requeued)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d dead letter(s) not replayed", len(failed), len(ids))
	}
	return nil
}

// replayOne replays the dead letter id and, when wait is positive, confirms
// it reached the stream. Replay has just read that the stream captures the
// event's subject, but a relay judges subjects on a list it re-reads at
// most every publish.SubjectsRefresh, so right after a subject was added
// it may refuse the event again: once that time has passed since the
// replay, it reads the list again, so the event is replayed once more.
func replayOne(ctx context.Context, conn deadletter.Beginner, js jetstream.JetStream, stream jetstream.Stream, id string, wait time.Duration) (deadletter.Replayed, error) {
	for again := false; ; again = true {
		checked := time.Now()
		r, err := deadletter.Replay(ctx, conn, js, stream, id)
		if err != nil || wait <= 0 {
			return r, err
		}
		err = deadletter.Confirm(ctx, conn, stream, &r, wait)
		if again || !errors.Is(err, deadletter.ErrDeadLetteredAgain) {
			return r, err
		}
		if !backoff.Sleep(ctx, time.Until(checked.Add(publish.SubjectsRefresh))) {
			return r, ctx.Err()
		}
	}
}

// replayAdvice says what to do about a failed replay.
func replayAdvice(err error) string {
	var notCaptured *deadletter.NotCapturedError
	var notPublished *deadletter.NotPublishedError
	switch {
	case errors.As(err, &notCaptured):
		return err.Error() + ": add it first (cdcrelay stream ensure --subjects ...)"
	case errors.As(err, &notPublished):
		return err.Error() + ": is `cdcrelay run` running? (see `cdcrelay status`)"
	case errors.Is(err, deadletter.ErrDeadLetteredAgain):
		return err.Error() + ": see why with `cdcrelay deadletter list`, fix it, then replay again"
	}
	return err.Error()
}
