package metrics_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/health"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/outbox"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// scrape fetches and parses /metrics.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the value of the sample of name whose labels include want
// (label=value pairs); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// expect is one condition on a scrape.
type expect struct {
	name   string
	labels []string
	ok     func(v float64) bool
	what   string
}

func eq(name string, want float64, labels ...string) expect {
	return expect{name, labels, func(v float64) bool { return v == want }, fmt.Sprintf("= %v", want)}
}

func gt(name string, than float64, labels ...string) expect {
	return expect{name, labels, func(v float64) bool { return v > than }, fmt.Sprintf("> %v", than)}
}

func waitMetrics(t *testing.T, addr string, conds ...expect) map[string]*dto.MetricFamily {
	t.Helper()
	var fams map[string]*dto.MetricFamily
	testenv.Eventually(t, time.Minute, func() error {
		fams = scrape(t, addr)
		for _, c := range conds {
			v, ok := value(fams, c.name, c.labels...)
			if !ok {
				return fmt.Errorf("%s%v absent", c.name, c.labels)
			}
			if !c.ok(v) {
				return fmt.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.what)
			}
		}
		return nil
	})
	return fams
}

func TestMetricsMoveAsEventsFlow(t *testing.T) {
	h := relaytest.New(t, env, true)
	reg := prometheus.NewRegistry()
	ack, err := metrics.NewAckLatency(reg)
	if err != nil {
		t.Fatal(err)
	}
	h.Cfg.Publish.OnAck = ack.Observe
	backlog := metrics.NewBacklog(h.Pool, metrics.BacklogConfig{Interval: 100 * time.Millisecond}, zerolog.Nop())
	h.Cfg.WhileLeading = append(h.Cfg.WhileLeading, func(ctx context.Context, _ election.Runner) error {
		return backlog.Run(ctx)
	})
	r := h.Start()
	if err := metrics.Register(reg, metrics.Config{Relay: r.Relay, Pool: h.Pool, Backlog: backlog}); err != nil {
		t.Fatal(err)
	}
	srv, err := health.Listen(health.Config{Addr: "127.0.0.1:0", Ready: r.Relay.Ready, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	addr := srv.Addr()

	h.WaitStreaming(r)
	waitMetrics(t, addr,
		eq("cdcrelay_leader", 1), eq("cdcrelay_streaming", 1), eq("cdcrelay_ready", 1),
		eq("cdcrelay_state", 1, "state", "leader"), eq("cdcrelay_state", 0, "state", "standby"),
		eq("cdcrelay_events_published_total", 0), eq("cdcrelay_outbox_unpublished_events", 0),
		eq("cdcrelay_slot_active", 1, "slot", "cdcrelay"), eq("cdcrelay_reconnects_total", 0, "cause", "nats"),
		gt("cdcrelay_leader_since_timestamp_seconds", 0),
	)

	const n = 50
	for i := 0; i < n; i++ {
		if _, err := outbox.Publish(context.Background(), h.Pool, "w.1", relaytest.Payload(1, i)); err != nil {
			t.Fatal(err)
		}
	}
	end := h.CurrentLSN()
	h.WaitAllDelivered(time.Minute)
	h.WaitConfirmedPast(end)
	waitMetrics(t, addr,
		eq("cdcrelay_events_published_total", n), eq("cdcrelay_events_flipped_total", n),
		eq("cdcrelay_publish_ack_latency_seconds", n), eq("cdcrelay_events_dead_lettered_total", 0),
		eq("cdcrelay_in_flight_events", 0), eq("cdcrelay_outbox_unpublished_events", 0),
		gt("cdcrelay_confirmed_lsn_bytes", 0), gt("cdcrelay_heartbeat_age_seconds", 0),
		eq("cdcrelay_slot_invalidated", 0, "slot", "cdcrelay"), eq("cdcrelay_slot_lag_seconds", 0),
	)
	if v, ok := value(scrape(t, addr), "cdcrelay_slot_lag_bytes", "slot", "cdcrelay"); !ok || v < 0 {
		t.Errorf("slot lag bytes = %v (present %v)", v, ok)
	}

	// With NATS away the backlog builds up and is counted; it drains when
	// NATS is back.
	h.NATS.Stop(t)
	for i := n; i < n+20; i++ {
		if _, err := outbox.Publish(context.Background(), h.Pool, "w.1", relaytest.Payload(1, i)); err != nil {
			t.Fatal(err)
		}
	}
	waitMetrics(t, addr, eq("cdcrelay_outbox_unpublished_events", 20), gt("cdcrelay_outbox_oldest_unpublished_age_seconds", 0),
		gt("cdcrelay_slot_lag_bytes", 0, "slot", "cdcrelay"), gt("cdcrelay_slot_lag_seconds", 0), gt("cdcrelay_in_flight_events", 0))
	h.NATS.Start(t)
	h.WaitAllDelivered(time.Minute)
	waitMetrics(t, addr, eq("cdcrelay_outbox_unpublished_events", 0), eq("cdcrelay_outbox_oldest_unpublished_age_seconds", 0),
		eq("cdcrelay_events_published_total", n+20), gt("cdcrelay_publish_retries_total", 0))
	h.CheckStream()
}
