package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox"
)

// fast scales the thresholds and windows the faults below must cross down
// to test time; every `for` is dropped too. The rest of each expression is
// the rules file's own, and a threshold that is no longer in it fails the
// test rather than being skipped.
var fast = map[string][2]string{
	"CdcrelaySlotLag":     {"> 60", "> 2"},
	"CdcrelayDeadLetters": {"[1h]", "[15s]"},
}

func fastRules(t *testing.T) []byte {
	t.Helper()
	f := readRuleFile(t)
	for _, g := range f.Groups {
		for i := range g.Rules {
			r := &g.Rules[i]
			r.For = ""
			if sub, ok := fast[r.Alert]; ok {
				if !strings.Contains(r.Expr, sub[0]) {
					t.Fatalf("alert %s: no %q in %q to scale down for the test", r.Alert, sub[0], r.Expr)
				}
				r.Expr = strings.Replace(r.Expr, sub[0], sub[1], 1)
			}
		}
	}
	out, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A real Prometheus scrapes a real relay every second with the rules loaded;
// each fault fires its alert, and nothing else, until it is cleared.
func TestAlertsFireOnRealFaults(t *testing.T) {
	promBin := prometheusTool(t, "prometheus")
	relayBin := buildRelay(t)
	h := relaytest.New(t, env, true)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := h.RunArgs("--metrics-addr", metricsAddr)
	relay := startProcess(t, "relay", relayBin, args...)
	prom := startPrometheus(t, promBin, metricsAddr, fastRules(t))
	const within = time.Minute

	prom.waitValue(t, within, "sum(cdcrelay_leader)", "1")
	prom.waitAlerts(t, within)

	// An event no stream captures is dead-lettered; with no new one the alert
	// resolves once its window has passed.
	if _, err := outbox.Publish(context.Background(), h.Pool, "nocapture.1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	prom.waitAlerts(t, within, "CdcrelayDeadLetters")
	prom.waitAlerts(t, within)

	// NATS away: events wait in the window, the oldest one ages.
	h.NATS.Stop(t)
	for i := range 3 {
		if _, err := outbox.Publish(context.Background(), h.Pool, "w.1", relaytest.Payload(1, i)); err != nil {
			t.Fatal(err)
		}
	}
	prom.waitAlerts(t, within, "CdcrelaySlotLag")
	h.NATS.Start(t)
	prom.waitAlerts(t, within)

	// The only relay killed: it exports nothing, and the job has no leader.
	relay.kill()
	prom.waitAlerts(t, within, "CdcrelayNoLeader")
	startProcess(t, "relay-restarted", relayBin, args...)
	prom.waitAlerts(t, within)

	prom.checkRulesHealthy(t)
}

// buildRelay builds the cdcrelay binary for the test.
func buildRelay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cdcrelay")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/cdcrelay/cdcrelay/cmd/cdcrelay").CombinedOutput()
	if err != nil {
		t.Fatalf("build cdcrelay: %v\n%s", err, out)
	}
	return bin
}

// freePort finds a port nothing listens on, for a server started later.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a child process; its output is shown if the test fails.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait() // killed on purpose, or at the end of the test
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("--- %s output (end) ---\n%s", name, b[max(len(b)-4000, 0):])
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// promServer is a Prometheus server started by the test.
type promServer struct{ url string }

// startPrometheus runs Prometheus scraping target every second and
// evaluating rules every second, and waits until it is ready.
func startPrometheus(t *testing.T, bin, target string, rules []byte) *promServer {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: cdcrelay
    static_configs:
      - targets: [%q]
`, target)
	for name, data := range map[string][]byte{"prometheus.yml": []byte(config), "rules.yml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProcess(t, "prometheus", bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	p := &promServer{url: "http://" + addr}
	testenv.Eventually(t, time.Minute, func() error {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("prometheus not ready: %s", resp.Status)
		}
		return nil
	})
	return p
}

// api GETs an API path and decodes its data into out.
func (p *promServer) api(path string, out any) error {
	resp, err := http.Get(p.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("GET %s: %s", path, body.Error)
	}
	return json.Unmarshal(body.Data, out)
}

// waitAlerts waits until the active alerts are exactly want (by name), all
// firing.
func (p *promServer) waitAlerts(t *testing.T, within time.Duration, want ...string) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("alerts %v after %v", want, time.Since(start).Round(100*time.Millisecond)) }()
	testenv.Eventually(t, within, func() error {
		var data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		}
		if err := p.api("/api/v1/alerts", &data); err != nil {
			return err
		}
		var firing, active []string
		for _, a := range data.Alerts {
			active = append(active, a.Labels["alertname"]+" ("+a.State+")")
			if a.State == "firing" && !slices.Contains(firing, a.Labels["alertname"]) {
				firing = append(firing, a.Labels["alertname"])
			}
		}
		slices.Sort(firing)
		if len(firing) != len(active) || !slices.Equal(firing, want) {
			return fmt.Errorf("alerts %v, want %v firing", active, want)
		}
		return nil
	})
}

// waitValue waits until an instant query returns one sample of value want.
func (p *promServer) waitValue(t *testing.T, within time.Duration, query, want string) {
	t.Helper()
	testenv.Eventually(t, within, func() error {
		var data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		}
		if err := p.api("/api/v1/query?query="+query, &data); err != nil {
			return err
		}
		if len(data.Result) != 1 || data.Result[0].Value[1] != want {
			return fmt.Errorf("%s = %v, want %s", query, data.Result, want)
		}
		return nil
	})
}

// checkRulesHealthy fails the test if a rule failed to evaluate.
func (p *promServer) checkRulesHealthy(t *testing.T) {
	t.Helper()
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.api("/api/v1/rules", &data); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if want := len(readRules(t)); n != want {
		t.Errorf("prometheus evaluates %d rules, the file has %d", n, want)
	}
}
