package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Flags come from the command line, then CDCRELAY_* variables, then the
// --config file (YAML or TOML), then their defaults.
func TestConfigFile(t *testing.T) {
	url := env.DB(t)
	if code, _, errOut := runCLI(t, "migrate", "--database-url", url); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	nats := env.NATS(t).URL()
	yaml := writeFile(t, "cdcrelay.yaml", "database-url: "+url+"\nnats-url: "+nats+"\nslot: from_yaml\nlock-id: 77\nmax-age: 90s\n")
	toml := writeFile(t, "cdcrelay.toml", "database-url = '"+url+"'\nnats-url = '"+nats+"'\nslot = 'from_toml'\nlock-id = 78\n")

	st, _, out := statusJSON(t, "--config", yaml)
	if st.Slot.Name != "from_yaml" || st.Leader.LockID != 77 || !strings.Contains(out, "no relay holds the leader lock (lock id 77)") {
		t.Errorf("status --config %s: slot %q, lock id %d\n%s", yaml, st.Slot.Name, st.Leader.LockID, out)
	}
	if st, _, _ := statusJSON(t, "--config", toml); st.Slot.Name != "from_toml" || st.Leader.LockID != 78 {
		t.Errorf("status --config %s: slot %q, lock id %d", toml, st.Slot.Name, st.Leader.LockID)
	}

	// The environment beats the file, the command line beats both.
	t.Setenv("CDCRELAY_SLOT", "from_env")
	code, out, errOut := runWithEnv(t, "status", "--json", "--config", yaml)
	if !strings.Contains(out, `"name": "from_env"`) {
		t.Errorf("CDCRELAY_SLOT over the file: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runWithEnv(t, "status", "--json", "--config", yaml, "--slot", "from_flag")
	if !strings.Contains(out, `"name": "from_flag"`) {
		t.Errorf("--slot over CDCRELAY_SLOT and the file: %d\n%s%s", code, out, errOut)
	}
}

// runWithEnv runs the program keeping the environment the test set.
func runWithEnv(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut lockedBuffer
	code := run(t.Context(), append([]string{"cdcrelay"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestConfigFileMistakes(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"typo.yaml", "databse-url: postgres://x\n", "unknown key(s) databse-url: keys are flag names, e.g. database-url"},
		{"global.yaml", "log-level: debug\n", "log-level is a global flag, which the file cannot set: use CDCRELAY_LOG_LEVEL"},
		{"type.yaml", "lock-id: [1, 2]\n", "lock-id"},
		{"broken.toml", "slot = \n", "--config"},
		{"cdcrelay.conf", "slot: x\n", "name it .yaml, .yml or .toml"},
		{"combo.yaml", "database-url: postgres://a@127.0.0.1:1/x\nembedded-nats: true\nnats-url: nats://127.0.0.1:4222\nnats-token: t0ken\n", "--nats-token set with --embedded-nats"},
	} {
		path := writeFile(t, tc.name, tc.text)
		code, _, errOut := runCLI(t, "run", "--config", path)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: status %d, stderr %q, want one line with %q", tc.name, code, errOut, tc.want)
		}
	}
	if code, _, errOut := runCLI(t, "status", "--config", "/nonexistent.yaml"); code != 1 || !strings.Contains(errOut, "--config: open /nonexistent.yaml") {
		t.Errorf("missing file: %d %q", code, errOut)
	}
}
