package publish

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// MinServerVersion is the oldest nats-server the relay works correctly
// with, from reading nats-server's source (stream.go,
// jetstream_batching.go) of each 2.14 release. Fast-ingest batch publishing
// (ADR-50, stream option allow_batched) came in 2.14.0. Before 2.14.3 a
// batch that the server ends on a refused message, after duplicates it
// skipped, never gets its PubAck (the relay would wait out the batch
// timeout); before 2.14.4 a message too large for the file store fails at
// store time, after the batch has moved past it, leaving a hole inside the
// batch. From 2.14.4 to 2.15.2 the fast-batch code differs only in pings and
// backward gaps, which the relay never sends. (The relay no longer depends
// on 2.14.7's fix that restores a stream's last Nats-Msg-Id after a restart:
// it does not chain publishes.)
const MinServerVersion = "2.14.4"

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
