//go:build linux

package sched

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
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
	if bad := notBatch(t, before.Nice); len(bad) > 0 {
		t.Fatal(bad)
	}
	old, err := threads()
	if err != nil {
		t.Fatal(err)
	}

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
	now, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(now) < len(old)+extra/2 {
		t.Fatalf("%d threads before, %d now: the runtime started too few to check", len(old), len(now))
	}
	if bad := notBatch(t, before.Nice); len(bad) > 0 {
		t.Fatal(bad)
	}
	release.Done()
	wg.Wait()
}

// Threads created while Batch runs end up under batch too. Each trial is a
// fresh process (a process switched once stays switched) whose goroutines
// keep starting and ending threads throughout.
func TestBatchWhileThreadsAreBeingCreated(t *testing.T) {
	if os.Getenv("SCHED_TEST_CHILD") != "" {
		churnAndBatch(t)
		return
	}
	trials := 50
	if s := os.Getenv("SCHED_TEST_TRIALS"); s != "" {
		trials, _ = strconv.Atoi(s)
	}
	// chrt starts each trial under the default policy, whatever this
	// process runs under by now.
	chrt, err := exec.LookPath("chrt")
	if err != nil {
		t.Skip("chrt (util-linux) not found")
	}
	failed := 0
	for i := range trials {
		cmd := exec.Command(chrt, "--other", "0", os.Args[0], "-test.run=^TestBatchWhileThreadsAreBeingCreated$", "-test.v")
		cmd.Env = append(os.Environ(), "SCHED_TEST_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			failed++
			t.Logf("trial %d: %v\n%s", i, err, out)
		} else if !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("trial %d did not run:\n%s", i, out)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d trials left a thread under the default policy", failed, trials)
	}
}

func churnAndBatch(t *testing.T) {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil || attr.Policy != unix.SCHED_NORMAL {
		t.Skip("not under the default policy")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				done := make(chan struct{})
				go func() {
					// Ending a goroutine locked to its thread ends the
					// thread: the runtime keeps making new ones.
					runtime.LockOSThread()
					close(done)
				}()
				<-done
			}
		}()
	}
	if _, err := Batch(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if bad := notBatch(t, attr.Nice); len(bad) > 0 {
		t.Fatal(bad)
	}
}

// notBatch lists the threads not under SCHED_BATCH with the given nice.
func notBatch(t *testing.T, nice int32) []string {
	t.Helper()
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			if _, statErr := os.Stat("/proc/self/task/" + strconv.Itoa(tid)); os.IsNotExist(statErr) {
				continue // exited
			}
			t.Fatal(err)
		}
		if attr.Policy != unix.SCHED_BATCH || attr.Nice != nice {
			bad = append(bad, fmt.Sprintf("thread %d: policy %d nice %d", tid, attr.Policy, attr.Nice))
		}
	}
	return bad
}
