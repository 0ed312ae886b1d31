package relay

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestAwaitStream(t *testing.T) {
	up := make(chan struct{})
	close(up)
	start := time.Now()
	if !awaitStream(context.Background(), up) || time.Since(start) >= housekeepingDelay {
		t.Fatal("housekeeping did not start at once on a stream that is up")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if awaitStream(ctx, make(chan struct{})) {
		t.Fatal("housekeeping ran in an ended term")
	}
	start = time.Now()
	if !awaitStream(context.Background(), make(chan struct{})) || time.Since(start) < housekeepingDelay {
		t.Fatal("housekeeping of a term whose stream does not start ran early or not at all")
	}
}

func TestRestartLoopStopsOnPermanentErrors(t *testing.T) {
	for code, want := range map[string]bool{"42501": true, "42883": true, "55000": true, "57P01": false, "08006": false} {
		err := fmt.Errorf("log running: %w", &pgconn.PgError{Code: code})
		if got := isPermanent(err); got != want {
			t.Errorf("isPermanent(%s) = %v, want %v", code, got, want)
		}
	}
	if isPermanent(context.DeadlineExceeded) {
		t.Error("a timeout is not permanent")
	}
}

func TestReceiveLimitOutlastsTheWalsender(t *testing.T) {
	s := time.Second
	for _, c := range []struct{ configured, sender, want time.Duration }{
		{60 * s, 60 * s, 70 * s},   // the defaults: 60 s each, status every 5 s
		{60 * s, 120 * s, 130 * s}, // a raised wal_sender_timeout
		{300 * s, 60 * s, 300 * s}, // a longer limit stands
		{60 * s, 0, 60 * s},        // the walsender never times out
		{-1, 60 * s, -1},           // off stays off
	} {
		if got := receiveLimit(c.configured, c.sender, 5*s); got != c.want {
			t.Errorf("receiveLimit(%v, %v) = %v, want %v", c.configured, c.sender, got, c.want)
		}
	}
}
