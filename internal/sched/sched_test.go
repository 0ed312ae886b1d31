//go:build linux

package sched

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// After Batch, every thread runs under SCHED_BATCH with its nice value
// kept, also threads the runtime starts afterwards.
func TestBatchCoversThreadsStartedLater(t *testing.T) {
	before, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if before.Policy != unix.SCHED_NORMAL {
		t.Skipf("test process already under policy %d", before.Policy)
	}
	n, err := Batch()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no thread changed")
	}
	checkAll(t, before.Nice)

	// Goroutines locked to their threads while all wait at once force the
	// runtime to start new threads.
	const extra = 8
	var ready, release sync.WaitGroup
	ready.Add(extra)
	release.Add(1)
	var wg sync.WaitGroup
	for range extra {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ready.Done()
			release.Wait()
		}()
	}
	ready.Wait()
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(tids) < extra {
		t.Fatalf("%d threads, want at least %d", len(tids), extra)
	}
	checkAll(t, before.Nice)
	release.Done()
	wg.Wait()
}

func checkAll(t *testing.T, nice int32) {
	t.Helper()
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			if _, statErr := os.Stat("/proc/self/task/" + strconv.Itoa(tid)); os.IsNotExist(statErr) {
				continue // exited
			}
			t.Fatal(err)
		}
		if attr.Policy != unix.SCHED_BATCH || attr.Nice != nice {
			t.Errorf("thread %d: policy %d nice %d, want SCHED_BATCH (%d) nice %d", tid, attr.Policy, attr.Nice, unix.SCHED_BATCH, nice)
		}
	}
}
