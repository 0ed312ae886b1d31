package publish_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/internal/natsserver"
	"github.com/cdcrelay/cdcrelay/publish"
)

// The stream captures a.denied.> but the relay's NATS user may not publish
// there: the server drops such a message with a permissions violation and no
// ack ever comes. Each such event is dead-lettered with the reason, and the
// events around it are published once, in order.
func TestPublishPermissionViolationIsDeadLettered(t *testing.T) {
	srv := deniedServer(t)
	f := newFixtureOn(t, srv.URL(), []nats.Option{nats.UserInfo("relay", "relay-pw")},
		publish.Config{AckTimeout: 2 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		jetstream.StreamConfig{})

	var all, stored []*flow.Event
	denied := map[int]bool{}
	for i := range 300 {
		subject := fmt.Sprintf("a.ok.%d", i%5)
		if i%60 == 17 {
			subject = "a.denied.x"
			denied[i] = true
		}
		ev := event(t, int64(i+1), subject)
		all = append(all, ev)
		if !denied[i] {
			stored = append(stored, ev)
		}
	}
	submitAll(t, f.pipe, all)
	waitResolved(t, f, len(all))
	for i, it := range f.resolvedItems() {
		var perm *publish.PermissionError
		switch {
		case it.Event != all[i]:
			t.Fatalf("resolved %d out of order", i)
		case denied[i] && !errors.As(it.DeadLetter, &perm):
			t.Fatalf("event %d on %s: dead letter %v, want a permission error", i, it.Event.Subject, it.DeadLetter)
		case denied[i] && !strings.Contains(it.DeadLetter.Error(), "may not publish to a.denied.x"):
			t.Fatalf("dead letter %q does not say why", it.DeadLetter)
		case !denied[i] && it.DeadLetter != nil:
			t.Fatalf("event %d on %s dead-lettered: %v", i, it.Event.Subject, it.DeadLetter)
		}
	}
	checkStream(t, f.url, stored)
	if s := statsOf(f.pipe); s.DeadLetters != uint64(len(denied)) {
		t.Fatalf("stats %+v: want %d dead letters", s, len(denied))
	}
}

// deniedServer is a server whose user "relay" (password relay-pw) may not
// publish to a.denied.>; clients without credentials are its admin.
func deniedServer(t *testing.T) *natsserver.Server {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{
		StoreDir: t.TempDir(),
		Users: []natsserver.User{
			{Name: "relay", Password: "relay-pw", DenyPublish: []string{"a.denied.>"}},
			{Name: "admin", Password: "admin-pw"},
		},
		NoAuthUser: "admin",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}
