package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/replication"
)

// failoverStatus says whether a failover now would keep the slot: what the
// primary shows, and what each standby named in --database-url holds.
type failoverStatus struct {
	Ready bool   `json:"ready"`
	Why   string `json:"why"`
	// Primary is the server status read, as it sees itself (host:port).
	Primary                  string           `json:"primary,omitempty"`
	ServerVersion            int              `json:"server_version"`
	FailoverSlot             bool             `json:"failover_slot"`
	SynchronizedStandbySlots []string         `json:"synchronized_standby_slots"`
	Standbys                 []standbyStatus  `json:"standbys"`
	Copies                   []slotCopyStatus `json:"standby_slot_copies"`
	Unreachable              []string         `json:"unreachable_hosts,omitempty"`
	// IdleTimeoutSeconds is idle_replication_slot_timeout (PostgreSQL 18),
	// 0 when off; InactiveSince is when the slot was last released.
	IdleTimeoutSeconds float64   `json:"idle_timeout_seconds"`
	InactiveSince      time.Time `json:"inactive_since,omitzero"`
}

type standbyStatus struct {
	Name         string `json:"name"`
	Addr         string `json:"addr,omitempty"`
	Slot         string `json:"slot,omitempty"`
	State        string `json:"state"`
	SyncState    string `json:"sync_state"`
	FlushLSN     string `json:"flush_lsn,omitempty"`
	Synchronized bool   `json:"in_synchronized_standby_slots"`
}

type slotCopyStatus struct {
	Host         string `json:"host"`
	Exists       bool   `json:"exists"`
	Synced       bool   `json:"synced"`
	Temporary    bool   `json:"temporary"`
	Invalidated  bool   `json:"invalidated"`
	Persistent   bool   `json:"persistent"`
	ConfirmedLSN string `json:"confirmed_lsn,omitempty"`
}

// failoverState fills st.Failover. Not being failover-ready is a warning
// (before PostgreSQL 17 no deployment is); a slot about to be invalidated
// for idleness is a problem.
func failoverState(ctx context.Context, conn *pgx.Conn, url, slot string, st *status, problem, warn func(string, ...any)) error {
	f, err := replication.ReadFailover(ctx, conn, slot)
	if err != nil {
		return err
	}
	copies, errs := replication.ReadSlotCopies(ctx, url, slot, 5*time.Second)
	fs := failoverStatus{Primary: f.Server, ServerVersion: f.Version, FailoverSlot: f.FailoverSlot,
		SynchronizedStandbySlots: append([]string{}, f.SynchronizedStandbySlots...),
		Standbys:                 []standbyStatus{}, Copies: []slotCopyStatus{},
		IdleTimeoutSeconds: f.IdleTimeout.Seconds(), InactiveSince: f.InactiveSince}
	fs.Ready, fs.Why = replication.Assess(f, copies)
	for _, s := range f.Standbys {
		ss := standbyStatus{Name: s.Name, Addr: s.Addr, Slot: s.Slot, State: s.State, SyncState: s.SyncState, Synchronized: s.Synchronized}
		if s.Flush != 0 {
			ss.FlushLSN = s.Flush.String()
		}
		fs.Standbys = append(fs.Standbys, ss)
	}
	for _, c := range copies {
		cs := slotCopyStatus{Host: c.Host, Exists: c.Exists, Synced: c.Synced, Temporary: c.Temporary, Invalidated: c.Invalidated, Persistent: c.Persistent()}
		if c.Confirmed != 0 {
			cs.ConfirmedLSN = c.Confirmed.String()
		}
		fs.Copies = append(fs.Copies, cs)
	}
	for _, err := range errs {
		fs.Unreachable = append(fs.Unreachable, redact(err.Error()))
	}
	st.Failover = fs
	if !fs.Ready && metrics.Actionable(f) {
		warn("not failover-ready: %s%s", fs.Why, failoverFix(f))
	}
	if left, risk := metrics.IdleRisk(f, time.Now()); risk {
		problem("slot %s has been unread since %s: idle_replication_slot_timeout (%v) invalidates it in %v; start a relay, or raise the timeout",
			slot, f.InactiveSince.UTC().Format(time.RFC3339), f.IdleTimeout, left.Round(time.Second))
	}
	return nil
}

// failoverFix is the advice for the first thing Assess found missing.
func failoverFix(f replication.Failover) string {
	switch {
	case f.Version < 170000 || f.InRecovery || !f.SlotExists:
		return ""
	case len(f.SynchronizedStandbySlots) == 0:
		return " (set synchronized_standby_slots on the primary to the standbys' physical slots: the relay then makes its slot a failover slot; see the README, PostgreSQL versions and failover)"
	case !f.FailoverSlot:
		return " (the leader makes the slot a failover slot within seconds of synchronized_standby_slots naming standbys; if none leads, run ALTER_REPLICATION_SLOT <slot> (FAILOVER true) on a replication connection, e.g. psql \"dbname=... replication=database\")"
	}
	return " (see the README, PostgreSQL versions and failover)"
}

// printFailover writes the failover section of `cdcrelay status`.
func printFailover(w io.Writer, f failoverStatus, p func(label, format string, args ...any)) {
	verdict := "NOT READY"
	if f.Ready {
		verdict = "ready"
	}
	p("failover", "%s: %s", verdict, f.Why)
	primary := f.Primary
	if primary == "" {
		primary = "(Unix socket)"
	}
	slots := strings.Join(f.SynchronizedStandbySlots, ",")
	if slots == "" {
		slots = "-"
	}
	p("", "primary %s (PostgreSQL %d), failover slot %v, synchronized_standby_slots %s", primary, f.ServerVersion/10000, f.FailoverSlot, slots)
	for _, s := range f.Standbys {
		p("", "standby %s from %s: %s, %s, slot %s, flushed %s", s.Name, orDash(s.Addr), s.State, s.SyncState, orDash(s.Slot), orDash(s.FlushLSN))
	}
	for _, c := range f.Copies {
		state := "persistent"
		switch {
		case !c.Exists:
			state = "MISSING"
		case c.Invalidated:
			state = "INVALIDATED"
		case !c.Synced:
			state = "NOT SYNCED"
		case c.Temporary:
			state = "TEMPORARY (dropped at promotion)"
		}
		p("", "copy on %s: %s, confirmed %s", c.Host, state, orDash(c.ConfirmedLSN))
	}
	for _, u := range f.Unreachable {
		fmt.Fprintf(w, "%-13s%s\n", "", "unreachable: "+u)
	}
	if f.IdleTimeoutSeconds > 0 {
		p("", "idle_replication_slot_timeout %v", time.Duration(f.IdleTimeoutSeconds*float64(time.Second)))
	}
}
