package sched

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Batch puts every thread of the process that runs under the default policy
// (SCHED_OTHER) under SCHED_BATCH, keeping its nice value; a thread under
// another policy, one the operator chose with chrt or systemd's
// CPUSchedulingPolicy=, keeps it. Threads inherit the policy of the thread
// that creates them, so once every thread is seen, every later one (the Go
// runtime starts them as it pleases) inherits the result too. It returns
// how many threads it changed.
func Batch() (int, error) {
	seen := map[int]bool{}
	changed := 0
	for {
		tids, err := threads()
		if err != nil {
			return changed, err
		}
		fresh := 0
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			did, err := batch(tid)
			if errors.Is(err, unix.ESRCH) { // the thread exited meanwhile
				continue
			}
			if err != nil {
				return changed, fmt.Errorf("put thread %d under SCHED_BATCH: %w", tid, err)
			}
			seen[tid] = true
			fresh++
			if did {
				changed++
			}
		}
		// A pass that found no thread unseen found none created by a thread
		// that had not been seen.
		if fresh == 0 {
			return changed, nil
		}
	}
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
	attr.Flags = 0
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
