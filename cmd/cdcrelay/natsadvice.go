package main

import (
	"errors"
	"fmt"

	"github.com/cdcrelay/cdcrelay/publish"
)

// natsAdvice adds what an operator must do to the NATS facts the library
// reports; other errors pass unchanged.
func natsAdvice(err error) error {
	var (
		old       *publish.ServerVersionError
		unbatched *publish.BatchingDisabledError
		noAtomic  *publish.AtomicDisabledError
	)
	switch {
	case errors.As(err, &old):
		return fmt.Errorf("%w: upgrade every nats-server the relay can connect to (each node of the cluster) to %s or later", err, old.Need)
	case errors.As(err, &unbatched):
		return fmt.Errorf("%w: set allow_batched: true in the definition of stream %s (where your infrastructure code defines it; the option needs nats-server 2.14 or later and changes nothing for other publishers), or run `cdcrelay stream ensure --stream %s --subjects ...`; the relay publishes in batches to keep its events in order beside the stream's other publishers",
			err, unbatched.Stream, unbatched.Stream)
	case errors.As(err, &noAtomic):
		return fmt.Errorf("%w: --atomic-transactions needs it: set allow_atomic: true in the definition of stream %s (where your infrastructure code defines it; it changes nothing for other publishers), or run `cdcrelay stream ensure --atomic-transactions --stream %s --subjects ...`, or run without --atomic-transactions",
			err, noAtomic.Stream, noAtomic.Stream)
	}
	return err
}
