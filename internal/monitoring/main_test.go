package monitoring_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// The files under test, from this package's directory.
var (
	rulesFile     = filepath.Join("..", "..", "deploy", "prometheus", "cdcrelay-alerts.yml")
	ruleTestsFile = filepath.Join("..", "..", "deploy", "prometheus", "cdcrelay-alerts.test.yml")
	dashboardFile = filepath.Join("..", "..", "deploy", "grafana", "cdcrelay.json")
	readmeFile    = filepath.Join("..", "..", "README.md")
)

// prometheusTool finds promtool or prometheus on PATH. Without it the test
// is skipped on a developer's machine and fails in CI, where make deps
// (scripts/ensure-prometheus.sh) installs it.
func prometheusTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " not found on PATH: run `make deps` (as root it installs Debian's prometheus package)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
