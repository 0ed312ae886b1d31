package relay

import (
	"context"
	"testing"
	"time"
)

func TestHousekeepingWaitsForTheStream(t *testing.T) {
	up := make(chan struct{})
	close(up)
	start := time.Now()
	if !housekeeping(context.Background(), up) || time.Since(start) >= housekeepingDelay {
		t.Fatal("housekeeping did not start at once on a stream that is up")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if housekeeping(ctx, make(chan struct{})) {
		t.Fatal("housekeeping ran in an ended term")
	}
	start = time.Now()
	if !housekeeping(context.Background(), make(chan struct{})) || time.Since(start) < housekeepingDelay {
		t.Fatal("housekeeping of a term whose stream does not start ran early or not at all")
	}
}
