package main

import (
	"errors"
	"fmt"

	"github.com/cdcrelay/cdcrelay/publish"
)

// natsAdvice adds what an operator must do to the NATS facts the library
// reports; other errors pass unchanged.
func natsAdvice(err error) error {
	var old *publish.ServerVersionError
	if errors.As(err, &old) {
		return fmt.Errorf("%w: upgrade every nats-server the relay can connect to (each node of the cluster) to %s or later", err, old.Need)
	}
	return err
}
