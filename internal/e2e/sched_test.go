//go:build linux

package e2e_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// A streaming relay runs every thread under SCHED_BATCH by default, so that
// its wake-ups do not preempt the walsender it reads from on a shared host;
// --cpu-policy normal leaves the kernel's default, and a policy or flag the
// operator set (here through chrt, which also starts the other cases under
// the default policy whatever the test runs under) stands.
func TestRelayThreadsFollowCPUPolicy(t *testing.T) {
	chrt, err := exec.LookPath("chrt")
	if err != nil {
		t.Skip("chrt (util-linux) not found")
	}
	h := relaytest.New(t, env, true)
	for i, c := range []struct {
		chrt   []string // how chrt starts the relay
		args   []string
		policy uint32
		flags  uint64 // of the main thread
	}{
		{[]string{"--other", "0"}, nil, unix.SCHED_BATCH, 0},
		{[]string{"--other", "0"}, []string{"--cpu-policy", "normal"}, unix.SCHED_NORMAL, 0},
		{[]string{"--idle", "0"}, nil, unix.SCHED_IDLE, 0},
		{[]string{"--reset-on-fork", "--other", "0"}, nil, unix.SCHED_BATCH, unix.SCHED_FLAG_RESET_ON_FORK},
	} {
		argv := append(append(append([]string{chrt}, c.chrt...), bin), h.RunArgs(c.args...)...)
		p := startCommand(t, fmt.Sprintf("relay-%d", i), exec.Command(argv[0], argv[1:]...))
		testenv.Eventually(t, time.Minute, func() error {
			if !slotActive(h) {
				return errors.New("relay not streaming yet")
			}
			return nil
		})
		tids := threadsOf(t, p.cmd.Process.Pid)
		for _, tid := range tids {
			attr, err := unix.SchedGetAttr(tid, 0)
			if errors.Is(err, unix.ESRCH) {
				continue // exited meanwhile
			}
			if err != nil {
				t.Fatal(err)
			}
			flags := c.flags
			if tid != p.cmd.Process.Pid {
				flags = 0 // a thread's creation clears reset-on-fork in the new thread
			}
			if attr.Policy != c.policy || attr.Flags&unix.SCHED_FLAG_RESET_ON_FORK != flags {
				t.Errorf("chrt %v, %v: thread %d of %d runs under policy %d flags %#x, want %d flags %#x",
					c.chrt, c.args, tid, len(tids), attr.Policy, attr.Flags, c.policy, flags)
			}
		}
		p.terminate(t, 30*time.Second)
		// The walsender outlives the relay for a moment: the next case
		// must not take it for its own relay's.
		testenv.Eventually(t, time.Minute, func() error {
			if slotActive(h) {
				return errors.New("the stopped relay's walsender still holds the slot")
			}
			return nil
		})
	}
}

func threadsOf(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	if len(tids) < 2 {
		t.Fatalf("process %d has %d threads", pid, len(tids))
	}
	return tids
}
