package publish

import (
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
