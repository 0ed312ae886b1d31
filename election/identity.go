package election

import (
	"os"
	"strconv"
	"strings"
)

// The default identity is "cdcrelay <host> pid <pid>"; Leader reads host
// and pid back from it.
const (
	identityPrefix = "cdcrelay "
	identityPID    = " pid "
)

func defaultIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	pid := os.Getpid()
	host = printable(host)
	if room := maxIdentity - len(identityPrefix) - len(identityPID) - len(strconv.Itoa(pid)); len(host) > room {
		host = host[:room]
	}
	return identityPrefix + host + identityPID + strconv.Itoa(pid)
}

// parseIdentity reads host and pid from a default identity; empty and 0
// for any other.
func parseIdentity(id string) (host string, pid int) {
	rest, ok := strings.CutPrefix(id, identityPrefix)
	if !ok {
		return "", 0
	}
	i := strings.LastIndex(rest, identityPID)
	if i < 0 {
		return "", 0
	}
	pid, err := strconv.Atoi(rest[i+len(identityPID):])
	if err != nil {
		return "", 0
	}
	return rest[:i], pid
}
