// Package sut runs the systems under test as child processes: the relay
// binary, the baseline poller and the NATS server, each its own process so
// its CPU time and memory can be read from /proc, and so a leader can be
// killed with SIGKILL the way a machine or the OOM killer would.
package sut

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a running child process. Its stderr goes to a log file; its stdout
// lines are kept (and logged) so callers can wait for a readiness line.
type Proc struct {
	Name    string
	LogPath string

	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	reader sync.WaitGroup

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
	waitErr error
}

// Start runs bin with args, logging to logDir/name.log.
func Start(name, bin string, args []string, logDir string) (*Proc, error) {
	logPath := fmt.Sprintf("%s/%s.log", logDir, name)
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = log
	// Children die with the benchmark, even when it is killed itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, log: log, exited: make(chan struct{}), changed: make(chan struct{})}
	p.reader.Add(1)
	go p.readLines(out)
	go func() {
		// Wait must follow the last read of the pipe.
		p.reader.Wait()
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		_ = log.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *Proc) readLines(r io.Reader) {
	defer p.reader.Done()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(p.log, line)
		p.mu.Lock()
		p.lines = append(p.lines, line)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

// PID is the child's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Lines is the number of stdout lines so far.
func (p *Proc) Lines() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// WaitLine waits for a stdout line containing substr, among lines numbered
// from on, and returns the number of lines seen including it.
func (p *Proc) WaitLine(ctx context.Context, substr string, from int, timeout time.Duration) (int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if strings.Contains(p.lines[i], substr) {
				p.mu.Unlock()
				return i + 1, nil
			}
		}
		from = len(p.lines)
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.exited:
			return 0, fmt.Errorf("%s exited before printing %q: %v (see %s)", p.Name, substr, p.Err(), p.LogPath)
		case <-deadline.C:
			return 0, fmt.Errorf("%s did not print %q within %v (see %s)", p.Name, substr, timeout, p.LogPath)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Err is the exit error once the process has exited.
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM, waits up to timeout for a clean exit, then kills. It
// returns the exit error of a process that did not exit cleanly.
func (p *Proc) Stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return p.Err()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return p.Err()
	case <-t.C:
		p.Kill()
		return errors.New(p.Name + " ignored SIGTERM for " + timeout.String() + "; killed")
	}
}
