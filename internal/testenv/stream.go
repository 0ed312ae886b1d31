package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Msg is one stored stream message as a test sees it.
type Msg struct {
	Seq     uint64
	Subject string
	Data    []byte
	Header  nats.Header
	// ID is the Nats-Msg-Id header.
	ID string
}

// JetStream connects to the NATS server at url for the rest of the test.
func JetStream(tb testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		tb.Fatalf("connect nats: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// StreamMessages reads every message of a stream, in stream order.
func StreamMessages(tb testing.TB, url, stream string) []Msg {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, js := JetStream(tb, url)
	defer nc.Close()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		tb.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		tb.Fatalf("stream info: %v", err)
	}
	want := info.State.Msgs
	out := make([]Msg, 0, want)
	if want == 0 {
		return out
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		tb.Fatalf("ordered consumer: %v", err)
	}
	for uint64(len(out)) < want {
		batch, err := c.Fetch(int(min(want-uint64(len(out)), 5000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			tb.Fatalf("fetch: %v", err)
		}
		got := 0
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				tb.Fatalf("metadata: %v", err)
			}
			out = append(out, Msg{Seq: md.Sequence.Stream, Subject: m.Subject(), Data: m.Data(), Header: m.Headers(), ID: m.Headers().Get(jetstream.MsgIDHeader)})
			got++
		}
		if err := batch.Error(); err != nil {
			tb.Fatalf("fetch: %v", err)
		}
		if got == 0 {
			tb.Fatalf("stream %s: read %d of %d messages, then nothing", stream, len(out), want)
		}
	}
	return out
}
