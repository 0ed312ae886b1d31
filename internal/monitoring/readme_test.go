package monitoring_test

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's alerts table from the rules file")

// The README's alerts table sits between these lines.
const (
	tableBegin = "<!-- alerts table: generated from deploy/prometheus/cdcrelay-alerts.yml by `go test ./internal/monitoring -run TestREADMEAlertsTable -update` -->\n"
	tableEnd   = "<!-- end of alerts table -->\n"
)

// alertsTable renders the rules as the README shows them.
func alertsTable(rules []alertRule) string {
	var b strings.Builder
	b.WriteString("| alert | severity | for | fires when |\n|---|---|---|---|\n")
	for _, r := range rules {
		after := r.For
		if after == "" {
			after = "at once"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.Alert, r.Labels["severity"], after,
			strings.ReplaceAll(r.Annotations["summary"], "|", `\|`))
	}
	return b.String()
}

// The README's alerts table is the rules file's: -update rewrites it.
func TestREADMEAlertsTable(t *testing.T) {
	b, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	before, rest, ok := strings.Cut(readme, tableBegin)
	if !ok {
		t.Fatalf("README.md has no line %q", tableBegin)
	}
	got, after, ok := strings.Cut(rest, tableEnd)
	if !ok {
		t.Fatalf("README.md has no line %q", tableEnd)
	}
	want := alertsTable(readRules(t))
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(readmeFile, []byte(before+tableBegin+want+tableEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's alerts table differs from %s; run go test ./internal/monitoring -run TestREADMEAlertsTable -update\ngot:\n%swant:\n%s",
		rulesFile, got, want)
}
