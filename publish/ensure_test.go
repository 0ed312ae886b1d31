package publish_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/publish"
)

// The bus's one stream is defined by whoever runs the infrastructure and
// shared with other publishers: `stream ensure` (and `run --ensure-stream`,
// at every start) adds what the relay needs and changes the limits it is
// given, and takes nothing away: not another publisher's subjects, not
// limits or settings it was not given.
func TestEnsureStreamKeepsWhatOthersConfigured(t *testing.T) {
	_, js := connect(t, env.NATS(t).URL())
	ctx := context.Background()
	infra := jetstream.StreamConfig{
		Name:        "bus",
		Description: "the bus, defined by the platform team",
		Subjects:    []string{"a.>", "audit.>", "mkt.x"},
		Storage:     jetstream.FileStorage,
		MaxBytes:    2 << 30,
		MaxAge:      72 * time.Hour,
		MaxMsgSize:  1 << 20,
		Duplicates:  5 * time.Minute,
		Compression: jetstream.S2Compression,
	}
	if _, err := js.CreateStream(ctx, infra); err != nil {
		t.Fatal(err)
	}
	info := func() jetstream.StreamConfig {
		t.Helper()
		s, err := js.Stream(ctx, "bus")
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config
	}

	// What `run --ensure-stream --subjects 'a.>,b.>,mkt.>'` asks for at start-up:
	// b.> is new, a.> is there, mkt.> widens mkt.x.
	if _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: "bus", Subjects: []string{"a.>", "b.>", "mkt.>"}}); err != nil {
		t.Fatal(err)
	}
	got := info()
	if want := []string{"a.>", "audit.>", "mkt.>", "b.>"}; !slices.Equal(got.Subjects, want) {
		t.Errorf("subjects %v, want %v: another publisher's subject was taken away", got.Subjects, want)
	}
	if got.MaxBytes != infra.MaxBytes || got.MaxAge != infra.MaxAge || got.Duplicates != infra.Duplicates {
		t.Errorf("limits max bytes %d, max age %v, duplicates %v; want the stream's own %d, %v, %v: limits nobody gave were reset",
			got.MaxBytes, got.MaxAge, got.Duplicates, infra.MaxBytes, infra.MaxAge, infra.Duplicates)
	}
	if got.Description != infra.Description || got.MaxMsgSize != infra.MaxMsgSize || got.Compression != infra.Compression {
		t.Errorf("description %q, max msg size %d, compression %v: settings the relay does not manage were reset",
			got.Description, got.MaxMsgSize, got.Compression)
	}
	if !got.AllowBatchPublish {
		t.Error("batched publishing not allowed after ensure")
	}

	// A limit given explicitly is applied; the rest stays.
	if _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: "bus", Subjects: []string{"a.>"}, MaxBytes: 3 << 30}); err != nil {
		t.Fatal(err)
	}
	if got := info(); got.MaxBytes != 3<<30 || got.MaxAge != infra.MaxAge || len(got.Subjects) != 4 {
		t.Errorf("after --max-bytes 3GiB: max bytes %d, max age %v, subjects %v", got.MaxBytes, got.MaxAge, got.Subjects)
	}

	// Subjects inside the stream's are captured already: nothing to add.
	if _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: "bus", Subjects: []string{"audit.*.x", "b.*.x", "mkt.*"}}); err != nil {
		t.Fatalf("ensure audit.*.x, b.*.x, mkt.*: %v (all are inside the stream's subjects already)", err)
	}

	// A subject that collides with one of the stream's without either
	// containing the other cannot be added without changing the other
	// publisher's: refused, naming both.
	_, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: "bus", Subjects: []string{"c.*.x"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = publish.EnsureStream(ctx, js, publish.StreamConfig{Name: "bus", Subjects: []string{"c.y.>"}})
	if err == nil || !strings.Contains(err.Error(), `"c.y.>"`) || !strings.Contains(err.Error(), `"c.*.x"`) {
		t.Fatalf("ensure c.y.> beside c.*.x: %v, want an error naming both", err)
	}
	if got := info(); !slices.Equal(got.Subjects, []string{"a.>", "audit.>", "mkt.>", "b.>", "c.*.x"}) {
		t.Errorf("subjects after a refused ensure: %v", got.Subjects)
	}
}
