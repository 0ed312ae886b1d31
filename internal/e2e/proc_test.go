package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

var (
	env *testenv.Env
	bin string
)

// TestMain builds the cdcrelay binary once: these tests run the relay as
// real processes, killed and restarted as an operator (or the OOM killer)
// would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cdcrelay-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "cdcrelay")
	build := exec.Command("go", "build", "-o", bin, "github.com/cdcrelay/cdcrelay/cmd/cdcrelay")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cdcrelay:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	testenv.Run(m, &env)
}

// proc is one relay process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(t *testing.T, name string, args []string) *proc {
	t.Helper()
	return startCommand(t, name, exec.Command(bin, args...))
}

// startCommand starts cmd, which runs the relay (possibly through a command
// that execs it, keeping the pid).
func startCommand(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{}), cmd: cmd}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("--- %s log ---\n%s", name, tail(string(b), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// terminate sends SIGTERM and waits up to within for a clean exit.
func (p *proc) terminate(t *testing.T, within time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s exited after SIGTERM with %v", p.name, p.err)
		}
	case <-time.After(within):
		t.Fatalf("%s did not exit within %v of SIGTERM", p.name, within)
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// slotActive reports whether some relay is streaming the slot.
func slotActive(h *relaytest.Harness) bool {
	_, active := h.Slot()
	return active
}

// continuousWriters writes a fixed number of events on 4 connections in
// the background.
type continuousWriters struct {
	done chan struct{}
	err  error
}

func startWriters(t *testing.T, h *relaytest.Harness, limit int) *continuousWriters {
	t.Helper()
	cw := &continuousWriters{done: make(chan struct{})}
	go func() {
		defer close(cw.done)
		cw.err = relaytest.RunWriters(context.Background(), 4, relaytest.MixedWriter(h, limit/4))
	}()
	return cw
}

// wait waits for the writers and fails the test (from its own goroutine)
// if one of them failed.
func (cw *continuousWriters) wait(t *testing.T) {
	t.Helper()
	<-cw.done
	if cw.err != nil {
		t.Fatal(cw.err)
	}
}
