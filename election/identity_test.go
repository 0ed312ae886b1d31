package election

import (
	"os"
	"strings"
	"testing"
)

func TestDefaultIdentityReadsBack(t *testing.T) {
	id := defaultIdentity()
	host, pid := parseIdentity(id)
	if want, _ := os.Hostname(); pid != os.Getpid() || host == "" || !strings.HasPrefix(want, host) {
		t.Fatalf("parseIdentity(%q) = %q, %d; want a prefix of %q and %d", id, host, pid, want, os.Getpid())
	}
	for _, other := range []string{"", "billing relay", "cdcrelay host pid x", "cdcrelay host"} {
		if host, pid := parseIdentity(other); host != "" || pid != 0 {
			t.Errorf("parseIdentity(%q) = %q, %d; want nothing", other, host, pid)
		}
	}
	if host, pid := parseIdentity("cdcrelay my host pid 7"); host != "my host" || pid != 7 {
		t.Errorf("parseIdentity = %q, %d", host, pid)
	}
}
