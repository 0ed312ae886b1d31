package publish

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestPermanentAndTransientRefusals(t *testing.T) {
	api := func(code jetstream.ErrorCode) error {
		return fmt.Errorf("ack: %w", &jetstream.APIError{ErrorCode: code})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"too large for the stream", api(jetstream.JSErrCodeStreamMessageExceedsMaximum), true},
		{"headers over 64 KiB", api(10097), true},
		{"cluster unavailable", api(10008), false},
		{"stream store failed", api(10077), false},
		{"sealed stream", api(10109), false},
		{"insufficient resources", api(10023), false},
		{"wrong last msg id", api(10070), false},
		{"timeout", jetstream.ErrAsyncPublishTimeout, false},
		{"no responders", nats.ErrNoResponders, false},
	} {
		if got := permanentAckErr(tc.err); got != tc.want {
			t.Errorf("%s: permanent %v, want %v", tc.name, got, tc.want)
		}
	}
	if !permanentSendErr(fmt.Errorf("publish: %w", nats.ErrMaxPayload)) || permanentSendErr(nats.ErrConnectionReconnecting) {
		t.Error("send errors misclassified")
	}
}

func TestDenialsMatchTheSubjectAndTheAttempt(t *testing.T) {
	d := newDenials()
	before := time.Now()
	d.note(errors.New("nats: some other error"))
	d.note(fmt.Errorf("%w: Permissions Violation for Publish to \"a.b.c\"", nats.ErrPermissionViolation))
	if d.since("a.b.c", before) == nil {
		t.Fatal("denial of a.b.c not recorded")
	}
	if d.since("a.b", before) != nil {
		t.Fatal("denial recorded for another subject")
	}
	if d.since("a.b.c", time.Now().Add(time.Second)) != nil {
		t.Fatal("a denial before the attempt counts for it")
	}
}
