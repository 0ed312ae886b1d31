//go:build !linux

package election

import (
	"syscall"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not available: the
// keepalives and the verify timeout still bound a partitioned leader.
func setUserTimeout(syscall.RawConn, time.Duration) error { return nil }
