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
// --cpu-policy normal leaves the kernel's default, and a policy the
// operator set (here SCHED_IDLE through chrt) stands.
func TestRelayThreadsFollowCPUPolicy(t *testing.T) {
	h := relaytest.New(t, env, true)
	chrt, err := exec.LookPath("chrt")
	if err != nil {
		t.Fatal("chrt (util-linux) not found")
	}
	for i, c := range []struct {
		under  []string // a command that execs the relay
		args   []string
		policy uint32
	}{
		{nil, nil, unix.SCHED_BATCH},
		{nil, []string{"--cpu-policy", "normal"}, unix.SCHED_NORMAL},
		{[]string{chrt, "--idle", "0"}, nil, unix.SCHED_IDLE},
	} {
		argv := append(append(c.under, bin), h.RunArgs(c.args...)...)
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
			if attr.Policy != c.policy {
				t.Errorf("%v: thread %d of %d runs under policy %d, want %d", c.args, tid, len(tids), attr.Policy, c.policy)
			}
		}
		p.terminate(t, 30*time.Second)
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
