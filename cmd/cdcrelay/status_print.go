package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// printStatus writes the status for a person: one line per part, problems
// last, in words.
func printStatus(w io.Writer, st *status, now time.Time) {
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-13s%s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "database     %s\nnats         %s\n\n", st.Database, st.NATS)

	if l := st.Leader; l.Held {
		who := l.Identity
		if l.Host != "" {
			who = fmt.Sprintf("%s, pid %d", l.Host, l.PID)
		}
		extra := fmt.Sprintf("backend %d", l.BackendPID)
		if l.ClientAddr != "" {
			extra += " from " + l.ClientAddr
		}
		since := ""
		if !l.Since.IsZero() {
			since = fmt.Sprintf(", connected since %s (%s ago)", l.Since.UTC().Format(time.RFC3339), ago(now, l.Since))
		}
		p("leader", "%s (%s)%s", who, extra, since)
	} else {
		p("leader", "NONE (lock id %d)", l.LockID)
	}

	switch s := st.Slot; {
	case !s.Exists:
		p("slot", "%s: MISSING", s.Name)
	default:
		state := "active"
		if !s.Active {
			state = "INACTIVE"
		}
		if s.Invalidated {
			state = "INVALIDATED"
		}
		p("slot", "%s: %s, confirmed %s, lag %s, WAL retained %s, wal_status %s",
			s.Name, state, orDash(s.ConfirmedLSN), bytesOrDash(s.LagBytes), bytesOrDash(s.RetainedBytes), orDash(s.WALStatus))
	}

	printFailover(w, st.Failover, p)

	switch o := st.Outbox; {
	case !o.Counted:
		p("outbox", "unpublished events not counted: %s", o.Error)
	case o.Unpublished == 0:
		p("outbox", "nothing unpublished")
	default:
		p("outbox", "%d unpublished, oldest from %s (%s ago)", o.Unpublished, o.OldestAt.UTC().Format(time.RFC3339), ago(now, o.OldestAt))
	}

	if d := st.DeadLetters; d.Total == 0 {
		p("dead letters", "none")
	} else {
		p("dead letters", "%d waiting for a replay, %d replayed; latest %s (%s ago)",
			d.Unreplayed, d.Total-d.Unreplayed, d.LatestAt.UTC().Format(time.RFC3339), ago(now, d.LatestAt))
	}

	if s := st.Stream; s.Reachable {
		last := "never"
		if !s.LastTime.IsZero() {
			last = s.LastTime.UTC().Format(time.RFC3339) + " (" + ago(now, s.LastTime) + " ago)"
		}
		p("stream", "%s: %d messages, %s, sequences %d-%d, last %s; subjects %s, %d consumer(s), duplicate window %s",
			s.Name, s.Messages, humanBytes(int64(s.Bytes)), s.FirstSeq, s.LastSeq, last, strings.Join(s.Subjects, ","), s.Consumers, s.DuplicateWin)
	} else {
		p("stream", "%s: UNREACHABLE: %s", s.Name, s.Error)
	}

	fmt.Fprintln(w)
	for _, warning := range st.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
	if st.Healthy {
		fmt.Fprintln(w, "healthy")
		return
	}
	for _, pr := range st.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", pr)
	}
	fmt.Fprintln(w, "UNHEALTHY")
}

func ago(now, t time.Time) string {
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func bytesOrDash(n int64) string {
	if n < 0 {
		return "-"
	}
	return humanBytes(n)
}

// humanBytes writes n in binary units: 0 B, 512 B, 1.5 KiB, 3.2 GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
