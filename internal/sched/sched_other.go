//go:build !linux

package sched

import (
	"errors"
	"runtime"
)

// Batch is Linux's alone: elsewhere it changes nothing and says so.
func Batch() (int, error) {
	return 0, errors.New("SCHED_BATCH exists on Linux only, not on " + runtime.GOOS)
}
