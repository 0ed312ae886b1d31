package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/bench/poller"
	"github.com/cdcrelay/cdcrelay/internal/natsserver"
)

// The benchmark starts itself again in these modes, so the poller and NATS
// run as processes of their own, like the relay: their CPU and memory are
// then theirs alone, and a leader can be SIGKILLed.

// pollerMain runs one poller replica until SIGTERM. It prints "leading" on
// stdout whenever it becomes leader.
func pollerMain(args []string) error {
	fs := flag.NewFlagSet("poller", flag.ContinueOnError)
	var cfg poller.Config
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL URL")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "NATS URL")
	fs.Int64Var(&cfg.LockID, "lock-id", benchLockID, "advisory lock key")
	fs.IntVar(&cfg.BatchSize, "batch", poller.DefaultBatchSize, "rows per batch and publish window")
	profile := fs.String("cpuprofile", "", "write a CPU profile here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.OnLead = func() { fmt.Println("leading") }
	log := zerolog.New(os.Stderr).With().Timestamp().Logger().Level(zerolog.InfoLevel)
	p, err := poller.New(cfg, log)
	if err != nil {
		return err
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return p.Run(ctx)
}

// natsMain runs an embedded JetStream server until SIGTERM and prints
// "ready" once it accepts connections.
func natsMain(args []string) error {
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	store := fs.String("store", "", "JetStream store directory")
	port := fs.Int("port", 0, "client port")
	profile := fs.String("cpuprofile", "", "write a CPU profile here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	srv, err := natsserver.Start(natsserver.Options{StoreDir: *store, Port: *port})
	if err != nil {
		return err
	}
	defer srv.Stop()
	fmt.Println("ready", srv.URL())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	return nil
}
