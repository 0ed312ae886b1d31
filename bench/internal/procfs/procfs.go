// Package procfs reads what the benchmark measures about processes from
// Linux's /proc: CPU time of process trees, peak resident memory, which
// process owns a TCP port, and how busy the whole machine is.
package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tick is USER_HZ, the unit of /proc CPU times; 100 on every Linux the
// benchmark runs on.
const tick = 10 * time.Millisecond

// Proc is one process's line of /proc/<pid>/stat.
type Proc struct {
	PID, PPID int
	// CPU is its own user+system time; Children is that of children it
	// has waited for (which a postmaster does for every backend).
	CPU, Children time.Duration
}

// Snapshot is every process at one moment.
type Snapshot map[int]Proc

// Take reads /proc/*/stat. Processes that exit while it reads are skipped.
func Take() (Snapshot, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	s := make(Snapshot, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := Stat(pid); err == nil {
			s[pid] = p
		}
	}
	return s, nil
}

// Stat reads one process.
func Stat(pid int) (Proc, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Proc{}, err
	}
	return parseStat(pid, b)
}

func parseStat(pid int, b []byte) (Proc, error) {
	// The command name is in parentheses and may hold spaces or ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Proc{}, fmt.Errorf("stat of %d: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return Proc{}, fmt.Errorf("stat of %d: %d fields", pid, len(f))
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	// f[0] is field 3 (state): ppid 4, utime 14, stime 15, cutime 16, cstime 17.
	return Proc{
		PID:      pid,
		PPID:     int(n(1)),
		CPU:      time.Duration(n(11)+n(12)) * tick,
		Children: time.Duration(n(13)+n(14)) * tick,
	}, nil
}

// TreeCPU is the CPU time of root and every descendant, living or reaped
// (reaped ones through the Children field of whoever waited for them).
func (s Snapshot) TreeCPU(root int) time.Duration {
	kids := make(map[int][]int)
	for pid, p := range s {
		kids[p.PPID] = append(kids[p.PPID], pid)
	}
	var sum time.Duration
	stack := []int{root}
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p, ok := s[pid]
		if !ok {
			continue
		}
		sum += p.CPU + p.Children
		stack = append(stack, kids[pid]...)
	}
	return sum
}

// CPU of one process, zero when it is not in the snapshot.
func (s Snapshot) CPU(pid int) time.Duration { return s[pid].CPU }

// PeakRSS is VmHWM of a process: the most resident memory it ever had.
func PeakRSS(pid int) (int64, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM for %d", pid)
}

// Machine is the whole machine's CPU time since boot.
type Machine struct {
	Busy, Total time.Duration
}

// ReadMachine reads the cpu line of /proc/stat. Busy counts steal (time the
// hypervisor gave to someone else), which is noise for the benchmark too.
func ReadMachine() (Machine, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return Machine{}, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	var m Machine
	for k := 1; k < len(f) && k <= 8; k++ {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		d := time.Duration(v) * tick
		m.Total += d
		if k != 4 && k != 5 { // idle, iowait
			m.Busy += d
		}
	}
	return m, nil
}

// LoadAvg is the one-minute load average.
func LoadAvg() (float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, fmt.Errorf("read /proc/loadavg: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("empty /proc/loadavg")
	}
	return strconv.ParseFloat(f[0], 64)
}
