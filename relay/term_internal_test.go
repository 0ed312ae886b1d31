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
