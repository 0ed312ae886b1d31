package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextDoublesWithinJitterUpToLimit(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Limit: 800 * time.Millisecond}
	for i, step := range []time.Duration{100, 200, 400, 800, 800} {
		step *= time.Millisecond
		if d := b.Next(); d < step/2 || d > step {
			t.Fatalf("wait %d = %v, want within [%v, %v]", i, d, step/2, step)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("after Reset wait %v, want ≤ base", d)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep returned true for a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep returned false without cancellation")
	}
}
