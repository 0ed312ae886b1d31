package procfs

import (
	"net"
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	line := []byte("4242 (postgres: walsender (x)) S 100 4242 4242 0 -1 4194560 1 0 0 0 250 31 7 3 20 0 1 0 1 1 1")
	p, err := parseStat(4242, line)
	if err != nil {
		t.Fatal(err)
	}
	if p.PPID != 100 || p.CPU != 2810*time.Millisecond || p.Children != 100*time.Millisecond {
		t.Fatalf("parsed %+v", p)
	}
}

func TestTreeCPU(t *testing.T) {
	s := Snapshot{
		1:  {PID: 1, PPID: 0, CPU: time.Second, Children: 5 * time.Second},
		2:  {PID: 2, PPID: 1, CPU: 2 * time.Second},
		3:  {PID: 3, PPID: 2, CPU: 3 * time.Second},
		99: {PID: 99, PPID: 0, CPU: time.Hour},
	}
	if got := s.TreeCPU(1); got != 11*time.Second {
		t.Fatalf("TreeCPU(1) = %v, want 11s", got)
	}
}

func TestSelfReadable(t *testing.T) {
	if _, err := Stat(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if rss, err := PeakRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Fatalf("PeakRSS = %d, %v", rss, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	owner, err := PortOwner(l.Addr().(*net.TCPAddr).Port, []int{os.Getpid()})
	if err != nil || owner != os.Getpid() {
		t.Fatalf("PortOwner = %d, %v", owner, err)
	}
}
