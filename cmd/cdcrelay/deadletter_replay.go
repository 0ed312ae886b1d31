package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/cdcrelay/cdcrelay/deadletter"
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
		r, err := deadletter.Replay(c.Context, conn, js, stream, id)
		if err == nil && c.Duration("wait") > 0 {
			err = deadletter.Confirm(c.Context, conn, stream, &r, c.Duration("wait"))
		}
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
		return err.Error() + " (if you just changed the stream, the relay reads its subjects when it (re)connects: restart it, then replay again)"
	}
	return err.Error()
}
