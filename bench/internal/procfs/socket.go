package procfs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PortOwner returns which of pids has a TCP socket bound to local port:
// how the benchmark finds the leader process from the client_port Postgres
// reports for the leader's session.
func PortOwner(port int, pids []int) (int, error) {
	inodes := make(map[string]bool)
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := socketInodes(name, port, inodes); err != nil {
			return 0, err
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no TCP socket on local port %d", port)
	}
	for _, pid := range pids {
		fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
			if err != nil {
				continue
			}
			if ino, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("none of %v owns local port %d", pids, port)
}

func socketInodes(name string, port int, into map[string]bool) error {
	f, err := os.Open(name)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		if strings.HasSuffix(f[1], want) {
			into[f[9]] = true
		}
	}
	return sc.Err()
}
