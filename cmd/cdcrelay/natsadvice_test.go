package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cdcrelay/cdcrelay/publish"
)

func TestNATSAdviceNamesTheVersionToUpgradeTo(t *testing.T) {
	err := natsAdvice(fmt.Errorf("start: %w", &publish.ServerVersionError{Server: "n1", Version: "2.12.4", Need: publish.MinServerVersion}))
	if got := err.Error(); !strings.Contains(got, "2.12.4") || !strings.Contains(got, "upgrade every nats-server") || !strings.Contains(got, publish.MinServerVersion+" or later") {
		t.Fatalf("advice %q", got)
	}
	err = natsAdvice(fmt.Errorf("start: %w", &publish.BatchingDisabledError{Stream: "bus"}))
	if got := err.Error(); !strings.Contains(got, "set allow_batched: true in the definition of stream bus") || !strings.Contains(got, "cdcrelay stream ensure --stream bus") {
		t.Fatalf("advice %q", got)
	}
	plain := errors.New("other")
	if natsAdvice(plain) != plain {
		t.Fatal("other errors must pass unchanged")
	}
}
