package testenv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

func TestDatabaseIsLogical(t *testing.T) {
	pool := testenv.Pool(t, env.DB(t))
	var level string
	if err := pool.QueryRow(context.Background(), "SHOW wal_level").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "logical" {
		t.Fatalf("wal_level = %q, want logical", level)
	}
}

func TestNATSRestartKeepsMessages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := env.NATS(t)
	_, js := testenv.JetStream(t, srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := js.Publish(ctx, "t.x", []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	srv.Restart(t)
	testenv.Eventually(t, 30*time.Second, func() error {
		s, err := js.Stream(ctx, "T")
		if err != nil {
			return err
		}
		if n := s.CachedInfo().State.Msgs; n != 10 {
			return errors.New("messages not back yet")
		}
		return nil
	})
}

func TestPostgresRestart(t *testing.T) {
	c := env.Cluster(t)
	url := env.DB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Restart(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	pool := testenv.Pool(t, url)
	testenv.Eventually(t, 30*time.Second, func() error { return pool.Ping(ctx) })
}
