package sched

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Batch puts every thread of the process under SCHED_BATCH, keeping each
// one's nice value. Threads inherit the policy of the thread that creates
// them, so once no thread is left under another policy every later thread
// (the Go runtime starts them as it pleases) runs under it too. It returns
// how many threads it changed.
func Batch() (int, error) {
	done := map[int]bool{}
	for {
		tids, err := threads()
		if err != nil {
			return len(done), err
		}
		changed := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			if err := batch(tid); err != nil {
				if errors.Is(err, unix.ESRCH) { // the thread exited meanwhile
					continue
				}
				return len(done), fmt.Errorf("put thread %d under SCHED_BATCH: %w", tid, err)
			}
			done[tid] = true
			changed++
		}
		// A pass that found every thread done saw no thread created by one
		// that was not.
		if changed == 0 {
			return len(done), nil
		}
	}
}

func batch(tid int) error {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return err
	}
	if attr.Policy == unix.SCHED_BATCH {
		return nil
	}
	attr.Policy = unix.SCHED_BATCH
	attr.Flags = 0
	return unix.SchedSetAttr(tid, attr, 0)
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
