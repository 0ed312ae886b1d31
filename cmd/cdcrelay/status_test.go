package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/health"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/outbox"
)

const (
	pgSecret   = "s3cret-pg-pw"
	natsSecret = "s3cret-nats-pw"
)

func statusJSON(t *testing.T, args ...string) (status, int, string) {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"status", "--json"}, args...)...)
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v (status %d)\nstdout:\n%s\nstderr:\n%s", err, code, out, errOut)
	}
	return st, code, out + errOut
}

// `cdcrelay run` with passwords in both URLs: it relays, serves metrics,
// `status` reports it in JSON and in words, and neither the logs nor status
// ever print a password.
func TestRunAndStatus(t *testing.T) {
	h := relaytest.New(t, env, true)
	dbURL := withPassword(t, h.URL, pgSecret)
	natsURL := withPassword(t, h.NATS.URL(), natsSecret)
	relay := startCLI(t, "--log-format", "json", "run", "--database-url", dbURL, "--nats-url", natsURL,
		"--metrics-addr", "127.0.0.1:0", "--lock-id", "4242", "--retention", "1h")
	addr := relay.metricsAddr(t)
	waitReadyz(t, addr, "leader streaming")

	const n = 25
	for i := 0; i < n; i++ {
		if _, err := outbox.Publish(context.Background(), h.Pool, "orders.created", []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	h.WaitAllDelivered(time.Minute)
	common := []string{"--database-url", dbURL, "--nats-url", natsURL, "--lock-id", "4242"}

	var st status
	testenv.Eventually(t, time.Minute, func() error {
		var code int
		var out string
		st, code, out = statusJSON(t, common...)
		if code != 0 || !st.Healthy {
			return &statusError{out}
		}
		return nil
	})
	host, _ := os.Hostname()
	switch {
	case !st.Leader.Held || st.Leader.PID != os.Getpid() || st.Leader.Host != host || st.Leader.BackendPID == 0 || st.Leader.Since.IsZero():
		t.Errorf("leader = %+v, want this process on %s", st.Leader, host)
	case !st.Slot.Exists || !st.Slot.Active || st.Slot.ConfirmedLSN == "" || st.Slot.LagBytes < 0 || st.Slot.Invalidated:
		t.Errorf("slot = %+v", st.Slot)
	case !st.Outbox.Counted || st.Outbox.Unpublished != 0 || st.Outbox.OldestAgeSeconds != 0:
		t.Errorf("outbox = %+v", st.Outbox)
	case !st.Stream.Reachable || st.Stream.Messages != n || st.Stream.LastSeq != n || st.Stream.Name != "bus":
		t.Errorf("stream = %+v", st.Stream)
	case st.DeadLetters.Total != 0 || len(st.Problems) != 0:
		t.Errorf("dead letters %+v, problems %v", st.DeadLetters, st.Problems)
	case !strings.Contains(st.Database, "xxxxx") || !strings.Contains(st.NATS, "xxxxx"):
		t.Errorf("database %q, nats %q: want the passwords replaced", st.Database, st.NATS)
	}

	code, words, errOut := runCLI(t, append([]string{"status"}, common...)...)
	if code != 0 || !strings.Contains(words, "\nhealthy\n") || !strings.Contains(words, "leader       "+host) {
		t.Errorf("status: %d\n%s%s", code, words, errOut)
	}
	fams := scrapeText(t, addr)
	for _, want := range []string{"cdcrelay_events_published_total 25", "cdcrelay_leader 1", "cdcrelay_build_info{", "go_goroutines", "cdcrelay_outbox_pruned_total 0"} {
		if !strings.Contains(fams, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	if code := relay.stop(t); code != 0 {
		t.Errorf("run exited with status %d: %s", code, relay.errOut.String())
	}
	logs := relay.errOut.String()
	if !strings.Contains(logs, "starting cdcrelay") || !strings.Contains(logs, "xxxxx") {
		t.Errorf("no start-up line with redacted URLs:\n%s", logs)
	}

	// Without a relay: unhealthy, exit status 1, the problems named.
	st, code, all := statusJSON(t, common...)
	if code != 1 || st.Healthy || st.Leader.Held || st.Slot.Active || len(st.Problems) < 2 {
		t.Errorf("status with no relay: %d %+v", code, st)
	}
	if !strings.Contains(all, "cdcrelay: unhealthy: no relay holds the leader lock") {
		t.Errorf("status with no relay says:\n%s", all)
	}
	for what, text := range map[string]string{"run's log": logs, "status": words + all} {
		if strings.Contains(text, pgSecret) || strings.Contains(text, natsSecret) {
			t.Errorf("%s printed a password:\n%s", what, text)
		}
	}
}

type statusError struct{ out string }

func (e *statusError) Error() string { return "not healthy yet:\n" + e.out }

func scrapeText(t *testing.T, addr string) string {
	t.Helper()
	code, body := httpGet(t, addr, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	return body
}

// Every bad combination fails before connecting, in one line naming the flag.
func TestRunRefusesBadCombinations(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-token", "t0ken", "--nats-creds", "/x"}, "cdcrelay: --nats-creds and --nats-token are all set: choose one way to authenticate to NATS\n"},
		{[]string{"--nats-user", "u"}, "cdcrelay: --nats-user is set without --nats-password\n"},
		{[]string{"--nats-tls-cert", "/etc/hostname"}, "cdcrelay: --nats-tls-cert and --nats-tls-key go together: set both or neither\n"},
		{[]string{"--nats-creds", "/nonexistent.creds"}, "cdcrelay: --nats-creds: open /nonexistent.creds: no such file or directory\n"},
		{[]string{"--embedded-nats", "--nats-token", "t0ken"}, "cdcrelay: --nats-token set with --embedded-nats, whose server has no authentication or TLS: drop it, or use --nats-url\n"},
		{[]string{"--retention", "-1h"}, "cdcrelay: --retention -1h0m0s: must be 0 (keep everything) or positive\n"},
		{[]string{"--pprof", "--metrics-addr", ""}, "cdcrelay: --pprof needs --metrics-addr to serve on\n"},
	} {
		code, _, errOut := runCLI(t, append([]string{"run", "--database-url", "postgres://a:" + pgSecret + "@127.0.0.1:1/x"}, tc.args...)...)
		if code != 1 || errOut != tc.want {
			t.Errorf("run %v: status %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}

// Two relays on one host with default flags: the second runs without the
// listener (and says so) rather than not at all; a chosen address in use
// fails at start-up.
func TestDefaultMetricsPortInUse(t *testing.T) {
	if ln, err := net.Listen("tcp", health.DefaultAddr); err == nil {
		defer ln.Close() // else someone else holds it, which does as well
	}
	h := relaytest.New(t, env, true)
	p := startCLI(t, "--log-format", "json", "run", "--database-url", h.URL, "--nats-url", h.NATS.URL())
	testenv.Eventually(t, time.Minute, func() error {
		if !strings.Contains(p.errOut.String(), "the default --metrics-addr is in use") || !strings.Contains(p.errOut.String(), `"message":"streaming"`) {
			return &statusError{p.errOut.String()}
		}
		return nil
	})
	code, _, errOut := runCLI(t, "run", "--database-url", h.URL, "--nats-url", h.NATS.URL(), "--metrics-addr", health.DefaultAddr)
	if code != 1 || !strings.Contains(errOut, "cdcrelay: --metrics-addr: listen on 127.0.0.1:9187: ") {
		t.Errorf("chosen address in use: %d %q", code, errOut)
	}
}
