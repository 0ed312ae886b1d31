package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// demoView prints the demo: permanent lines, and on a terminal a status
// line kept at the bottom and rewritten in place (elsewhere it is printed
// as a line every few seconds instead).
type demoView struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	status string // shown at the bottom on a terminal
	start  time.Time
	shown  time.Time // when the status was last printed as a line

	written, arrived, duplicates int
	seen                         map[string]bool
	// Latency of the single events (bursts have their own line).
	singles        int
	latSum, latMax time.Duration
	bursts         map[int]*burst
}

type burst struct {
	size, arrived int
	writtenAt     time.Time
}

func newDemoView(w io.Writer) *demoView {
	now := time.Now()
	return &demoView{w: w, tty: isTerminal(w), start: now, shown: now, seen: map[string]bool{}, bursts: map[int]*burst{}}
}

// printf prints a permanent line above the status line.
func (v *demoView) printf(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.printfLocked(format, args...)
}

func (v *demoView) printfLocked(format string, args ...any) {
	if v.tty && v.status != "" {
		fmt.Fprint(v.w, "\r\033[K")
	}
	fmt.Fprintf(v.w, format+"\n", args...)
	if v.tty && v.status != "" {
		fmt.Fprint(v.w, v.status)
	}
}

func (v *demoView) wrote(n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.written += n
}

func (v *demoView) burstWritten(id, size int, at time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.bursts[id] = &burst{size: size, writtenAt: at}
}

// arrival records one message read from the stream; single events are
// printed, bursts summed up once complete.
func (v *demoView) arrival(eventID, subject string, payload []byte, ev demoEvent, writtenAt, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen[eventID] {
		v.duplicates++
		v.printfLocked("  DUPLICATE %s %s", subject, eventID)
		return
	}
	v.seen[eventID] = true
	v.arrived++
	if ev.Burst == 0 {
		lat := now.Sub(writtenAt)
		v.singles++
		v.latSum += lat
		v.latMax = max(v.latMax, lat)
		v.printfLocked("  #%-5d %-22s %-44s %s", ev.N, subject, payload, ms(lat))
		return
	}
	b := v.bursts[ev.Burst]
	if b == nil {
		return
	}
	if b.arrived++; b.arrived == b.size {
		took := now.Sub(b.writtenAt)
		v.printfLocked("  burst #%d: %d events written in one transaction, all arrived within %s (%.0f events/s)",
			ev.Burst, b.size, ms(took), float64(b.size)/took.Seconds())
		delete(v.bursts, ev.Burst)
	}
}

// counts returns what was written and what arrived.
func (v *demoView) counts() (written, arrived int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.written, v.arrived
}

// tick refreshes the status line with what the relay has in flight.
func (v *demoView) tick(inFlight int, state string, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	avg := v.avgLatency()
	line := fmt.Sprintf("  written %d | arrived %d | in flight %d | latency avg %s, max %s | relay %s | %s",
		v.written, v.arrived, inFlight, ms(avg), ms(v.latMax), state, now.Sub(v.start).Round(time.Second))
	if v.tty {
		v.status = line
		fmt.Fprint(v.w, "\r\033[K"+line)
	} else if now.Sub(v.shown) >= 5*time.Second {
		v.shown = now
		fmt.Fprintln(v.w, line)
	}
}

// summary ends the live view with the totals.
func (v *demoView) summary() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tty && v.status != "" {
		fmt.Fprint(v.w, "\r\033[K")
		v.status = ""
	}
	avg := v.avgLatency()
	fmt.Fprintf(v.w, "\nwritten %d events, %d arrived, %d duplicates; single events from write to arrival: avg %s, max %s\n",
		v.written, v.arrived, v.duplicates, ms(avg), ms(v.latMax))
}

func (v *demoView) avgLatency() time.Duration {
	if v.singles == 0 {
		return 0
	}
	return v.latSum / time.Duration(v.singles)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
