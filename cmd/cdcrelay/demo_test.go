package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The demo brings up its own PostgreSQL and JetStream, shows single events
// and a burst arriving exactly once, and removes everything when it ends.
func TestDemo(t *testing.T) {
	code, out, errOut := runCLI(t, "demo", "--duration", "6s", "--rate", "5", "--burst", "200", "--burst-every", "2s")
	if code != 0 {
		t.Fatalf("demo: status %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"starting PostgreSQL", "leader, streaming from slot cdcrelay", "/metrics",
		"  #1 ", "demo.orders.", `{"n":1,"order":1001`,
		"burst #1: 200 events written in one transaction, all arrived within",
		" 0 duplicates", "stopped the relay",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`written (\d+) events, (\d+) arrived`).FindStringSubmatch(out)
	if m == nil || m[1] != m[2] {
		t.Errorf("not every event arrived: %v\n%s", m, out)
	}
	for _, re := range []string{`removed (/\S+cdcrelay-pg-\S+)`, `removed (/\S+cdcrelay-demo-nats-\S+)`} {
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Errorf("demo did not say it removed %s:\n%s", re, out)
			continue
		}
		if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
			t.Errorf("%s still exists (%v)", m[1], err)
		}
	}
}
