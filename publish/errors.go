package publish

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrStreamNotFound is matched (errors.Is) by a *StreamNotFoundError.
var ErrStreamNotFound = errors.New("stream not found")

// StreamNotFoundError says the relay's stream does not exist.
type StreamNotFoundError struct {
	Stream string
}

func (e *StreamNotFoundError) Error() string {
	return fmt.Sprintf("stream %s does not exist", e.Stream)
}

// Is makes errors.Is(err, ErrStreamNotFound) true.
func (e *StreamNotFoundError) Is(target error) bool { return target == ErrStreamNotFound }

// BatchingDisabledError says the stream does not allow batched publishing
// (its allow_batched option is off), which the relay needs to keep its
// events in order beside other publishers.
type BatchingDisabledError struct {
	Stream string
}

func (e *BatchingDisabledError) Error() string {
	return fmt.Sprintf("stream %s does not allow batched publishing (allow_batched is false)", e.Stream)
}

// AtomicDisabledError says the stream does not allow atomic batch
// publishing (its allow_atomic option is off), which
// Config.AtomicTransactions needs.
type AtomicDisabledError struct {
	Stream string
}

func (e *AtomicDisabledError) Error() string {
	return fmt.Sprintf("stream %s does not allow atomic batch publishing (allow_atomic is false)", e.Stream)
}

func streamErr(name string, err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return &StreamNotFoundError{Stream: name}
	}
	return fmt.Errorf("read stream %s: %w", name, err)
}

// CheckStream returns a *StreamNotFoundError when the stream does not
// exist, another error when it cannot be read, and a *BatchingDisabledError when it does not
// allow batched publishing.
func CheckStream(ctx context.Context, js jetstream.JetStream, name string) error {
	_, err := readStream(ctx, js, name, false)
	return err
}

// CheckAtomicStream is CheckStream for Config.AtomicTransactions: it also
// returns an *AtomicDisabledError when the stream does not allow atomic
// batch publishing.
func CheckAtomicStream(ctx context.Context, js jetstream.JetStream, name string) error {
	_, err := readStream(ctx, js, name, true)
	return err
}

// readStream reads the subjects a stream captures and checks that it
// allows batched publishing (and atomic batches, when atomic is set).
func readStream(ctx context.Context, js jetstream.JetStream, name string, atomic bool) (subjectFilter, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, streamErr(name, err)
	}
	cfg := s.CachedInfo().Config
	if !cfg.AllowBatchPublish {
		return nil, &BatchingDisabledError{Stream: name}
	}
	if atomic && !cfg.AllowAtomicPublish {
		return nil, &AtomicDisabledError{Stream: name}
	}
	filter := subjectFilter(cfg.Subjects)
	if len(filter) == 0 {
		filter = subjectFilter{cfg.Name}
	}
	return filter, nil
}
