package publish

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// MinServerVersion is the oldest nats-server the relay works correctly
// with. Fast-ingest batch publishing (ADR-50, stream option allow_batched)
// came in 2.14.0; 2.14.7 (and 2.15.0) restore a stream's last Nats-Msg-Id
// after a restart even when the last message is older than the duplicate
// window (nats-server PR #8564). Before that fix a stream that restarts
// forgets its last message id and any publish chained to it with
// Nats-Expected-Last-Msg-Id is refused forever.
const MinServerVersion = "2.14.7"

// ServerVersionError says the NATS server is older than MinServerVersion.
type ServerVersionError struct {
	Server  string // the server's name, as it reports it
	Version string // as the server reports it, e.g. "2.12.4"
	Need    string // MinServerVersion
}

func (e *ServerVersionError) Error() string {
	return fmt.Sprintf("nats-server %s (%s) is older than %s, the oldest the relay works with", e.Version, e.Server, e.Need)
}

// CheckServer returns a *ServerVersionError when the server nc is
// connected to is older than MinServerVersion, or its version cannot be
// read.
func CheckServer(nc *nats.Conn) error {
	v := nc.ConnectedServerVersion()
	if v == "" {
		return fmt.Errorf("check nats-server version: %w", nats.ErrConnectionClosed)
	}
	if versionAtLeast(v, MinServerVersion) {
		return nil
	}
	return &ServerVersionError{Server: nc.ConnectedServerName(), Version: v, Need: MinServerVersion}
}

// versionAtLeast compares "major.minor.patch[-pre][+build]" versions. A
// pre-release of a version is older than the version itself; a version that
// does not parse is never new enough.
func versionAtLeast(have, need string) bool {
	h, hPre, ok := parseVersion(have)
	if !ok {
		return false
	}
	n, _, _ := parseVersion(need)
	for i := range h {
		if h[i] != n[i] {
			return h[i] > n[i]
		}
	}
	return !hPre
}

func parseVersion(v string) (nums [3]int, pre bool, ok bool) {
	v = strings.TrimPrefix(v, "v")
	v, _, _ = strings.Cut(v, "+")
	v, preRelease, hasPre := strings.Cut(v, "-")
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return nums, false, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nums, false, false
		}
		nums[i] = n
	}
	return nums, hasPre && preRelease != "", true
}
