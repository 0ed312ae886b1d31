// Command cdcrelay relays events from PostgreSQL's transactional outbox
// (bus.outbox) to NATS JetStream through logical replication, and creates
// and upgrades the schema that services write events to.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

func main() {
	// Millisecond timestamps at least: a relay's log is read to order events.
	zerolog.TimeFieldFormat = time.RFC3339Nano
	ctx, stop := signalContext(context.Background(), os.Stderr)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the program and returns its exit status: 0, or 1 after printing
// the error as one line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if err := newApp(stdout, stderr).RunContext(ctx, args); err != nil {
		// One line, whatever the error: drivers put newlines and tabs in theirs.
		fmt.Fprintf(stderr, "cdcrelay: %s\n", strings.Join(strings.Fields(err.Error()), " "))
		return 1
	}
	return 0
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    "cdcrelay",
		Usage:   "relay events from a PostgreSQL outbox table to NATS JetStream",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", EnvVars: []string{"CDCRELAY_LOG_LEVEL"}, Value: "info", Usage: "trace, debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", EnvVars: []string{"CDCRELAY_LOG_FORMAT"}, Usage: "json or console (default: console when stderr is a terminal, else json)"},
		},
		Commands: []*cli.Command{
			runCommand(),
			migrateCommand(),
			streamCommand(),
			statusCommand(),
			deadletterCommand(),
			demoCommand(),
			versionCommand(),
		},
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors come back from RunContext and run prints them; cli must not
		// exit the process itself.
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
	}
}

// signalContext returns a context cancelled by the first SIGINT or SIGTERM,
// which starts a graceful shutdown; a second signal exits at once, with
// status 128+signal as a shell reports it. stop releases the signals and
// waits for the goroutine watching them.
func signalContext(parent context.Context, stderr io.Writer) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(stderr, "cdcrelay: %v: shutting down (again to exit at once)\n", sig)
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			fmt.Fprintf(stderr, "cdcrelay: %v again: exiting\n", sig)
			os.Exit(128 + int(sig.(syscall.Signal)))
		case <-done:
		}
	})
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
		cancel()
	}
}
