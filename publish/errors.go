package publish

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrStreamNotFound is returned (wrapped) when the relay's stream does not exist.
var ErrStreamNotFound = errors.New("stream not found")

func streamErr(name string, err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w: create it with `cdcrelay stream ensure --stream %s --subjects ...` or run with --ensure-stream", name, ErrStreamNotFound, name)
	}
	return fmt.Errorf("read stream %s: %w", name, err)
}

// CheckStream returns an error naming the fix when the stream does not exist
// or cannot be read.
func CheckStream(ctx context.Context, js jetstream.JetStream, name string) error {
	if _, err := js.Stream(ctx, name); err != nil {
		return streamErr(name, err)
	}
	return nil
}
