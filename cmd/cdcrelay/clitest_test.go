package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// lockedBuffer is a buffer the program writes to from several goroutines
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cliProcess is the program running in this process, as main would run it.
type cliProcess struct {
	cancel      context.CancelFunc
	done        chan int
	code        int
	stopped     bool
	out, errOut lockedBuffer
}

// startCLI runs the program with args in the background until stop.
func startCLI(t *testing.T, args ...string) *cliProcess {
	t.Helper()
	clearEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	p := &cliProcess{cancel: cancel, done: make(chan int, 1)}
	go func() { p.done <- run(ctx, append([]string{"cdcrelay"}, args...), &p.out, &p.errOut) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("cdcrelay %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), p.out.String(), p.errOut.String())
		}
	})
	return p
}

// stop cancels the program (as SIGTERM does) and returns its exit status.
func (p *cliProcess) stop(t *testing.T) int {
	t.Helper()
	if p.stopped {
		return p.code
	}
	p.stopped = true
	p.cancel()
	select {
	case p.code = <-p.done:
	case <-time.After(time.Minute):
		t.Fatal("the program did not stop within a minute")
	}
	return p.code
}

// metricsAddr waits for the start-up log line naming the metrics URL.
func (p *cliProcess) metricsAddr(t *testing.T) string {
	t.Helper()
	var addr string
	testenv.Eventually(t, time.Minute, func() error {
		for _, line := range strings.Split(p.errOut.String(), "\n") {
			var rec struct{ Metrics string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Metrics != "" {
				addr = strings.TrimSuffix(strings.TrimPrefix(rec.Metrics, "http://"), "/metrics")
				return nil
			}
		}
		select {
		case code := <-p.done:
			p.done <- code
			return fmt.Errorf("exited with status %d: %s", code, p.errOut.String())
		default:
		}
		return errors.New("no start-up line with the metrics address yet")
	})
	return addr
}

func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CDCRELAY_") && !strings.HasPrefix(name, "CDCRELAY_TEST_") || name == "DATABASE_URL" || name == "NATS_URL" {
			t.Setenv(name, "") // restored when the test ends
			os.Unsetenv(name)
		}
	}
	t.Setenv("CDCRELAY_PROCS", "0") // the test process keeps its GOMAXPROCS
}

// httpGet returns the status and body of an endpoint.
func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func waitReadyz(t *testing.T, addr, want string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if code, body := httpGet(t, addr, "/readyz"); code != http.StatusOK || !strings.Contains(body, want) {
			return fmt.Errorf("/readyz = %d %q", code, body)
		}
		return nil
	})
}

// withPassword puts a password into a URL (trust authentication ignores it).
func withPassword(t *testing.T, raw, password string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	user := "nobody"
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}
