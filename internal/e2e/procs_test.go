package e2e_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// The relay runs Go code on one thread unless told otherwise (--procs), an
// operator's $GOMAXPROCS stands when the flag is not given, and
// --procs 0 leaves Go's choice; the Go runtime's own metric shows which.
func TestRelayProcs(t *testing.T) {
	h := relaytest.New(t, env, true)
	for i, c := range []struct {
		env  string // GOMAXPROCS
		args []string
		want int
	}{
		{"", nil, 1},
		{"3", nil, 3},
		{"3", []string{"--procs", "2"}, 2},
		{"3", []string{"--procs", "0"}, 3},
	} {
		cmd := exec.Command(bin, h.RunArgs(append([]string{"--metrics-addr", "127.0.0.1:0"}, c.args...)...)...)
		cmd.Env = withoutVars(os.Environ(), "GOMAXPROCS", "CDCRELAY_PROCS")
		if c.env != "" {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+c.env)
		}
		p := startCommand(t, fmt.Sprintf("relay-%d", i), cmd)
		want := fmt.Sprintf("\ngo_sched_gomaxprocs_threads %d\n", c.want)
		testenv.Eventually(t, time.Minute, func() error {
			addr, err := metricsURL(p.log)
			if err != nil {
				return err
			}
			body, err := get(addr)
			if err != nil {
				return err
			}
			if !strings.Contains(body, want) {
				return fmt.Errorf("GOMAXPROCS=%q %v: /metrics lacks %q", c.env, c.args, strings.TrimSpace(want))
			}
			return nil
		})
		p.terminate(t, 30*time.Second)
	}
}

func withoutVars(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, name) {
			out = append(out, kv)
		}
	}
	return out
}

// metricsURL reads the metrics URL from a relay's start-up log line.
func metricsURL(log string) (string, error) {
	b, err := os.ReadFile(log)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		var rec struct{ Metrics string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Metrics != "" {
			return rec.Metrics, nil
		}
	}
	return "", errors.New("no start-up line with the metrics URL yet")
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
