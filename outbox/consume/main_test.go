package consume_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/migrations"
	"github.com/cdcrelay/cdcrelay/outbox/consume"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// connect opens a connection of its own, as a separate consumer process
// would; closing it is how a test crashes that process.
func connect(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

func createStream(tb testing.TB, js jetstream.JetStream, name string, subjects ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.FileStorage}); err != nil {
		tb.Fatalf("create stream: %v", err)
	}
}

// publish stores one message with an event id, as the relay does.
func publish(tb testing.TB, js jetstream.JetStream, subject, data string) uuid.UUID {
	tb.Helper()
	id, err := tryPublish(js, subject, data)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func tryPublish(js jetstream.JetStream, subject, data string) (uuid.UUID, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := uuid.Must(uuid.NewV7())
	msg := &nats.Msg{Subject: subject, Data: []byte(data), Header: nats.Header{jetstream.MsgIDHeader: []string{id.String()}}}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return uuid.Nil, fmt.Errorf("publish: %w", err)
	}
	return id, nil
}

func newConsumer(tb testing.TB, js jetstream.JetStream, cfg consume.Config) *consume.Consumer {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := consume.New(ctx, js, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// inboxDB returns a pool on a fresh, migrated database.
func inboxDB(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := env.DB(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := migrations.Apply(ctx, conn); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return testenv.Pool(tb, url)
}
