package sched

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// settle is how long after its last change Batch looks again. A thread
// being created copies its creator's policy before it is listed in
// /proc/self/task; one whose creator changed meanwhile shows up listed,
// under the old policy, within microseconds (settle leaves room for a
// creating thread preempted on a busy host).
const settle = 50 * time.Millisecond

// Batch puts every thread of the process that runs under the default policy
// (SCHED_OTHER) under SCHED_BATCH, keeping its nice value and its
// reset-on-fork flag; a thread under another policy, one the operator chose
// with chrt or systemd's CPUSchedulingPolicy=, keeps it. Threads inherit
// the policy of the thread that creates them, so once every thread is
// switched, every later one (the Go runtime starts them as it pleases) runs
// under batch too. Batch returns once a pass started settle after the last
// change found no thread left to switch; it returns how many threads it
// switched, also when it fails part-way.
func Batch() (int, error) {
	changed := 0
	for {
		n, err := pass()
		changed += n
		if err != nil || n == 0 {
			return changed, err
		}
		time.Sleep(settle)
	}
}

// pass switches every listed thread still under SCHED_OTHER.
func pass() (int, error) {
	tids, err := threads()
	if err != nil {
		return 0, err
	}
	changed := 0
	for _, tid := range tids {
		did, err := batch(tid)
		if errors.Is(err, unix.ESRCH) { // the thread exited meanwhile
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("put thread %d under SCHED_BATCH: %w", tid, err)
		}
		if did {
			changed++
		}
	}
	return changed, nil
}

func batch(tid int) (bool, error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return false, err
	}
	if attr.Policy != unix.SCHED_NORMAL {
		return false, nil
	}
	attr.Policy = unix.SCHED_BATCH
	// Clearing reset-on-fork takes privilege; keeping it changes nothing
	// for batch, which a fork keeps anyway.
	attr.Flags &= unix.SCHED_FLAG_RESET_ON_FORK
	return true, unix.SchedSetAttr(tid, attr, 0)
}

func threads() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
