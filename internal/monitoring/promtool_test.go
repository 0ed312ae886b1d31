package monitoring_test

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// The alert rules are valid and pass their promtool unit tests
// (deploy/prometheus/cdcrelay-alerts.test.yml).
func TestAlertRulesPromtool(t *testing.T) {
	promtool := prometheusTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(rulesFile)},
		{"test", "rules", filepath.Base(ruleTestsFile)},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(rulesFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
