package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/outbox/emit"
	"github.com/cdcrelay/cdcrelay/relay"
)

// exported is what a relay process and an emitter export: every metric
// name, and which of them are histograms (queried as _bucket, _sum, _count).
type exported struct {
	names, histograms map[string]bool
}

// descName takes the name out of a Desc: client_golang has no accessor.
var descName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)

// exportedMetrics builds the registries cdcrelay run and an emitter build,
// without connecting anything, and reads every descriptor off them:
// Describe lists the metrics a scrape only shows in some states (a leader's,
// the slot's) too.
func exportedMetrics(t *testing.T) exported {
	t.Helper()
	reg := metrics.NewRegistry("test")
	if _, err := metrics.NewAckLatency(reg); err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{DatabaseURL: "postgres://127.0.0.1:1/none", NATSURL: "nats://127.0.0.1:1"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := metrics.Register(reg, metrics.Config{Relay: r}); err != nil {
		t.Fatal(err)
	}
	e, err := emit.New(emit.Config{URL: "nats://127.0.0.1:1", Stream: "EVENTS", SubjectPrefix: "event", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	out := exported{names: map[string]bool{}, histograms: map[string]bool{}}
	descs := make(chan *prometheus.Desc)
	go func() {
		defer close(descs)
		reg.Describe(descs)
	}()
	for d := range descs {
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		out.names[m[1]] = true
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if !out.names[f.GetName()] {
			t.Fatalf("%s gathered but not described", f.GetName())
		}
		if t := f.GetType(); t == dto.MetricType_HISTOGRAM || t == dto.MetricType_SUMMARY {
			out.histograms[f.GetName()] = true
		}
	}
	return out
}

// prometheusOwn are the series Prometheus itself writes.
var prometheusOwn = []string{"up", "ALERTS"}

// check returns what is wrong with one query: a metric that is not
// exported, or a rate over something that is no counter.
func (ex exported) check(query string) []string {
	sels, err := selectors(query)
	if err != nil {
		return []string{err.Error()}
	}
	if len(sels) == 0 {
		return []string{"selects no metric"}
	}
	var bad []string
	for _, s := range sels {
		counter := strings.HasSuffix(s.name, "_total")
		known := ex.names[s.name] || slices.Contains(prometheusOwn, s.name)
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(s.name, suffix); ok && ex.histograms[base] {
				known, counter = true, true
			}
		}
		switch {
		case !known:
			bad = append(bad, s.name+" is not a metric the relay or the emitter exports")
		case slices.Contains([]string{"rate", "irate", "increase", "resets"}, s.fn) && !counter:
			bad = append(bad, fmt.Sprintf("%s(%s): not a counter", s.fn, s.name))
		}
	}
	return bad
}

// alertRule is one rule of the rules file.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string      `yaml:"name"`
		Rules []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

func readRuleFile(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return f
}

// readRules lists the rules of every group.
func readRules(t *testing.T) []alertRule {
	t.Helper()
	var out []alertRule
	for _, g := range readRuleFile(t).Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rules", rulesFile)
	}
	return out
}

// Every alert queries exported metrics and carries what an operator needs.
func TestAlertRulesQueryExportedMetrics(t *testing.T) {
	ex := exportedMetrics(t)
	for _, r := range readRules(t) {
		for _, problem := range ex.check(r.Expr) {
			t.Errorf("alert %s: %s", r.Alert, problem)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
		}
		if r.Annotations["summary"] == "" || !strings.Contains(r.Annotations["description"], "Check first") {
			t.Errorf("alert %s: want a summary and a description saying what to check first", r.Alert)
		}
	}
}

// onDashboard are the metrics the dashboard must show (the list).
var onDashboard = []string{
	"cdcrelay_events_published_total", "cdcrelay_events_flipped_total", "cdcrelay_publish_ack_latency_seconds_bucket",
	"cdcrelay_slot_lag_bytes", "cdcrelay_slot_lag_seconds", "cdcrelay_outbox_unpublished_events",
	"cdcrelay_outbox_oldest_unpublished_age_seconds", "cdcrelay_in_flight_events", "cdcrelay_leader",
	"cdcrelay_reconnects_total", "cdcrelay_events_dead_lettered_total", "cdcrelay_emitter_dropped_total",
	"cdcrelay_emitter_queued_events",
}

// grafanaLabelValues is a Grafana variable query: label_values(query, label)
// or label_values(label).
var grafanaLabelValues = regexp.MustCompile(`^label_values\((?:(.*),\s*)?\w+\s*\)$`)

// Every panel and variable of the dashboard queries exported metrics.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	ex := exportedMetrics(t)
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var shown []string
	for _, raw := range dash.Panels {
		var p panel
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		for _, p := range append(p.Panels, p) { // a collapsed row holds its panels
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q queries nothing", p.Title)
			}
			for _, tg := range p.Targets {
				for _, problem := range ex.check(tg.Expr) {
					t.Errorf("panel %q, query %s: %s", p.Title, tg.Expr, problem)
				}
				sels, _ := selectors(tg.Expr)
				for _, s := range sels {
					shown = append(shown, s.name)
				}
			}
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		m := grafanaLabelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is no label_values()", v.Name, q)
			continue
		}
		for _, problem := range ex.check(m[1]) {
			t.Errorf("variable %s: %s", v.Name, problem)
		}
	}
	for _, name := range onDashboard {
		if !slices.Contains(shown, name) {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
}

type panel struct {
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}
