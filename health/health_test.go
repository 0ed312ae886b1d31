package health_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcrelay/cdcrelay/health"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// serve runs the endpoints for ready until the test ends and returns their address.
func serve(t *testing.T, cfg health.Config) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := health.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return srv.Addr()
}

func get(t *testing.T, addr, path string) (int, string) {
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

func waitReady(t *testing.T, addr string, wantCode int, wantBody string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		code, body := get(t, addr, "/readyz")
		if code != wantCode || !strings.Contains(body, wantBody) {
			return fmt.Errorf("/readyz = %d %q, want %d %q", code, body, wantCode, wantBody)
		}
		return nil
	})
}

// Two relays on one database: the leader is ready while it streams, the
// standby while its lock connection works; when PostgreSQL goes away neither
// is, and when the leader stops the standby takes over and is ready as leader.
func TestReadinessOfLeaderAndStandby(t *testing.T) {
	h := relaytest.New(t, env, true)
	first := h.Start()
	h.WaitStreaming(first)
	h.Cfg.Election.Identity = "cdcrelay standby"
	second := h.Start()
	// Ready once its lock connection is up: the state a new relay starts in
	// is already "standby".
	testenv.Eventually(t, time.Minute, func() error {
		var n int
		if err := h.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cdcrelay standby'`).Scan(&n); err != nil || n == 0 {
			return fmt.Errorf("standby's lock connection not open yet (%v)", err)
		}
		return nil
	})
	leader := serve(t, health.Config{Ready: first.Relay.Ready})
	standby := serve(t, health.Config{Ready: second.Relay.Ready})

	waitReady(t, leader, http.StatusOK, "ready: leader streaming")
	waitReady(t, standby, http.StatusOK, "ready: standby")
	for _, addr := range []string{leader, standby} {
		if code, body := get(t, addr, "/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("/healthz = %d %q", code, body)
		}
	}

	c := env.Cluster(t)
	ctx := context.Background()
	if err := c.StopServer(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, standby, http.StatusServiceUnavailable, "not ready: unhealthy")
	waitReady(t, leader, http.StatusServiceUnavailable, "not ready:")
	if code, _ := get(t, leader, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while PostgreSQL is down: the process is alive", code)
	}
	if err := c.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	// A term that began on a connection the restart broke ends at once and
	// the other replica takes over: wait for one that streams.
	testenv.Eventually(t, time.Minute, func() error {
		if !first.Relay.Streaming() && !second.Relay.Streaming() {
			return fmt.Errorf("no leader streaming yet: %v, %v", first.Relay.State(), second.Relay.State())
		}
		return nil
	})

	// Whoever leads now, stopping it hands over to the other.
	newLeader, other, otherAddr := first, second, standby
	if second.Relay.Streaming() {
		newLeader, other, otherAddr = second, first, leader
	}
	newLeader.Stop(t)
	h.WaitStreaming(other)
	waitReady(t, otherAddr, http.StatusOK, "ready: leader streaming")
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdcrelay_test_gauge", Help: "A test gauge."})
	reg.MustRegister(g)
	g.Set(7)
	ready := func() (bool, string) { return false, "leader, not streaming yet" }

	plain := serve(t, health.Config{Ready: ready, Gatherer: reg})
	if code, body := get(t, plain, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: leader, not streaming yet\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, body := get(t, plain, "/metrics"); code != http.StatusOK || !strings.Contains(body, "cdcrelay_test_gauge 7") {
		t.Errorf("/metrics = %d %q", code, body)
	}
	if code, _ := get(t, plain, "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without Pprof = %d, want 404", code)
	}
	if code, body := get(t, plain, "/"); code != http.StatusOK || !strings.Contains(body, "/readyz") || strings.Contains(body, "pprof") {
		t.Errorf("/ = %d %q", code, body)
	}

	profiled := serve(t, health.Config{Ready: ready, Pprof: true})
	if code, body := get(t, profiled, "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ = %d", code)
	}
	if code, _ := get(t, profiled, "/debug/pprof/profile?seconds=1"); code != http.StatusOK {
		t.Errorf("/debug/pprof/profile = %d", code)
	}
	if code, _ := get(t, profiled, "/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics without a gatherer = %d, want 404", code)
	}

	if _, err := health.Listen(health.Config{Addr: plain, Ready: ready}); err == nil {
		t.Error("listening on an address in use succeeded")
	}
}
