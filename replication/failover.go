package replication

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Failover is what the server the relay streams from shows of whether the
// slot would survive a failover to one of its standbys, and how close an
// unread slot is to PostgreSQL 18's idle timeout.
//
// What the primary alone cannot show is the standbys' copies of the slot:
// whether a standby has one, and whether it is persistent (a synced copy
// stays temporary, and is dropped at promotion, until the standby has the
// WAL and catalog rows it needs). ReadSlotCopy reads that on a standby.
type Failover struct {
	// Version is server_version_num.
	Version int
	// Server is the address and port the server was reached on, empty over
	// a Unix socket.
	Server string
	// InRecovery is set when the server is itself a standby.
	InRecovery bool
	// SlotExists, FailoverSlot (pg_replication_slots.failover, 17+) and
	// Confirmed describe the relay's slot.
	SlotExists   bool
	FailoverSlot bool
	Confirmed    pglogrepl.LSN
	// SynchronizedStandbySlots is the setting of that name (17+): the
	// physical slots whose standbys must have received WAL before a logical
	// walsender sends it on.
	SynchronizedStandbySlots []string
	// Standbys are the physical standbys streaming from the server.
	Standbys []Standby
	// IdleTimeout is idle_replication_slot_timeout (18+), zero when off.
	IdleTimeout time.Duration
	// InactiveSince is when the slot was last released (17+); zero while a
	// walsender reads it.
	InactiveSince time.Time
}

// Standby is one physical standby as pg_stat_replication shows it.
type Standby struct {
	Name string // application_name
	Addr string // client_addr, empty over a Unix socket
	// Slot is the physical slot it streams through, empty when none.
	Slot      string
	State     string // streaming, catchup, ...; empty when the role may not see it
	SyncState string // async, potential, sync, quorum
	// Flush is the WAL it has flushed; zero when the role may not see it
	// (pg_read_all_stats or pg_monitor can).
	Flush pglogrepl.LSN
	// Synchronized is set when Slot is named in synchronized_standby_slots.
	Synchronized bool
}

const failoverSQL = `
SELECT current_setting('server_version_num')::int,
       pg_is_in_recovery(),
       coalesce(host(inet_server_addr()) || ':' || inet_server_port(), ''),
       coalesce(current_setting('synchronized_standby_slots', true), ''),
       coalesce((SELECT setting || ' ' || coalesce(unit, '') FROM pg_settings WHERE name = 'idle_replication_slot_timeout'), ''),
       s.slot_name IS NOT NULL,
       coalesce((j->>'failover')::boolean, false),
       coalesce(s.confirmed_flush_lsn::text, ''),
       coalesce(j->>'inactive_since', '')
FROM (SELECT 1) one
LEFT JOIN pg_replication_slots s ON s.slot_name = $1
LEFT JOIN LATERAL to_jsonb(s) j ON true`

// Physical walsenders only: a logical one has a database.
const standbysSQL = `
SELECT coalesce(r.application_name, ''), coalesce(host(r.client_addr), ''), coalesce(p.slot_name::text, ''),
       coalesce(r.state, ''), coalesce(r.sync_state, ''), coalesce(r.flush_lsn::text, '')
FROM pg_stat_replication r
JOIN pg_stat_activity a ON a.pid = r.pid AND a.datname IS NULL
LEFT JOIN pg_replication_slots p ON p.active_pid = r.pid AND p.slot_type = 'physical'
ORDER BY 1, 2`

// RowsQuerier is a Querier that also runs queries returning several rows.
type RowsQuerier interface {
	Querier
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ReadFailover reads the server's side of failover readiness for slot.
func ReadFailover(ctx context.Context, q RowsQuerier, slot string) (Failover, error) {
	var (
		f                           Failover
		syncSlots, idle, conf, inac string
	)
	if err := q.QueryRow(ctx, failoverSQL, slot).Scan(&f.Version, &f.InRecovery, &f.Server, &syncSlots, &idle,
		&f.SlotExists, &f.FailoverSlot, &conf, &inac); err != nil {
		return Failover{}, fmt.Errorf("read failover state: %w", err)
	}
	var err error
	if f.Confirmed, err = parseOptionalLSN(conf); err != nil {
		return Failover{}, fmt.Errorf("read failover state: confirmed_flush_lsn: %w", err)
	}
	if inac != "" {
		if f.InactiveSince, err = time.Parse(time.RFC3339Nano, inac); err != nil {
			return Failover{}, fmt.Errorf("read failover state: inactive_since %q: %w", inac, err)
		}
	}
	if f.IdleTimeout, err = parseSetting(idle); err != nil {
		return Failover{}, fmt.Errorf("read failover state: idle_replication_slot_timeout: %w", err)
	}
	named := map[string]bool{}
	for _, s := range strings.Split(syncSlots, ",") {
		if s = strings.TrimSpace(s); s != "" {
			f.SynchronizedStandbySlots = append(f.SynchronizedStandbySlots, s)
			named[s] = true
		}
	}
	rows, err := q.Query(ctx, standbysSQL)
	if err != nil {
		return Failover{}, fmt.Errorf("read standbys: %w", err)
	}
	f.Standbys, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Standby, error) {
		var s Standby
		var flush string
		if err := row.Scan(&s.Name, &s.Addr, &s.Slot, &s.State, &s.SyncState, &flush); err != nil {
			return s, err
		}
		s.Synchronized = s.Slot != "" && named[s.Slot]
		var err error
		s.Flush, err = parseOptionalLSN(flush)
		return s, err
	})
	if err != nil {
		return Failover{}, fmt.Errorf("read standbys: %w", err)
	}
	return f, nil
}

// parseSetting reads an integer setting with its pg_settings unit ("60 s",
// "1 min", "0 min"); empty means the server has no such setting.
func parseSetting(s string) (time.Duration, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), " ")
	if num == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	per := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[unit]
	if per == 0 {
		return 0, fmt.Errorf("%q: unknown unit", s)
	}
	return time.Duration(n) * per, nil
}

// SlotCopy is a standby's copy of the slot, read on the standby.
type SlotCopy struct {
	// Host is the host:port it was read on.
	Host string
	// InRecovery is false when the host is no standby (the primary itself).
	InRecovery bool
	// Exists, Synced, Temporary and Invalidated describe the copy. Only a
	// synced, persistent, valid copy survives a promotion.
	Exists, Synced, Temporary, Invalidated bool
	// Confirmed is the copy's confirmed position (zero while temporary).
	Confirmed pglogrepl.LSN
}

// Persistent reports whether the copy would survive a promotion.
func (c SlotCopy) Persistent() bool {
	return c.Exists && c.Synced && !c.Temporary && !c.Invalidated
}

// ReadSlotCopy reads slot's copy on a standby (any server, in fact: on the
// primary InRecovery is false).
func ReadSlotCopy(ctx context.Context, q Querier, slot string) (SlotCopy, error) {
	var c SlotCopy
	var conf string
	err := q.QueryRow(ctx, `
SELECT pg_is_in_recovery(), s.slot_name IS NOT NULL, coalesce((j->>'synced')::boolean, false), coalesce(s.temporary, false),
       coalesce(j->>'invalidation_reason', '') <> '' OR coalesce(j->>'wal_status', '') = 'lost',
       coalesce(s.confirmed_flush_lsn::text, '')
FROM (SELECT 1) one
LEFT JOIN pg_replication_slots s ON s.slot_name = $1
LEFT JOIN LATERAL to_jsonb(s) j ON true`, slot).Scan(&c.InRecovery, &c.Exists, &c.Synced, &c.Temporary, &c.Invalidated, &conf)
	if err != nil {
		return SlotCopy{}, fmt.Errorf("read standby's copy of slot %s: %w", slot, err)
	}
	if c.Confirmed, err = parseOptionalLSN(conf); err != nil {
		return SlotCopy{}, fmt.Errorf("read standby's copy of slot %s: %w", slot, err)
	}
	return c, nil
}

// ReadSlotCopies reads the slot's copy on every host named in url (a libpq
// URL may name several: host1:port1,host2:port2) that is a standby. Hosts
// that cannot be reached are returned with their error; the primary is left
// out.
func ReadSlotCopies(ctx context.Context, url, slot string, timeout time.Duration) ([]SlotCopy, []error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, []error{fmt.Errorf("read standbys' copies of slot %s: %w", slot, err)}
	}
	hosts := []*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}
	hosts = append(hosts, cfg.Fallbacks...)
	var (
		copies []SlotCopy
		errs   []error
		seen   = map[string]bool{}
	)
	for _, h := range hosts {
		addr := net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port)))
		if seen[addr] {
			continue // the same host with and without TLS
		}
		seen[addr] = true
		c, err := readCopyAt(ctx, cfg, h, slot, timeout)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		case c.InRecovery:
			c.Host = addr
			copies = append(copies, c)
		}
	}
	return copies, errs
}

func readCopyAt(ctx context.Context, base *pgx.ConnConfig, h *pgconn.FallbackConfig, slot string, timeout time.Duration) (SlotCopy, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg := base.Copy()
	cfg.Host, cfg.Port, cfg.TLSConfig, cfg.Fallbacks = h.Host, h.Port, h.TLSConfig, nil
	// target_session_attrs=read-write would refuse the standbys we look for.
	cfg.ValidateConnect = nil
	cfg.RuntimeParams["application_name"] = "cdcrelay failover check"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return SlotCopy{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return ReadSlotCopy(ctx, conn, slot)
}

// hidden reports standbys whose details pg_stat_replication withholds from
// the role.
func hidden(standbys []Standby) bool {
	for _, s := range standbys {
		if s.State == "" {
			return true
		}
	}
	return false
}

// Assess says whether a failover to a standby would keep the slot, and
// why not: from the primary's view f, and the copies read on the standbys
// (none when the URL names no standby: then the copies are unverified).
func Assess(f Failover, copies []SlotCopy) (ready bool, why string) {
	switch {
	case f.InRecovery:
		return false, "the server is a standby"
	case f.Version < 170000:
		return false, fmt.Sprintf("PostgreSQL %d keeps no slot across a failover (17 does): the relay recreates it on the new primary and backfills", f.Version/10000)
	case !f.SlotExists:
		return false, "the slot does not exist yet"
	case !f.FailoverSlot:
		return false, "the slot is not a failover slot (it was created without FAILOVER)"
	case len(f.SynchronizedStandbySlots) == 0:
		return false, "synchronized_standby_slots is empty: the relay can publish events no standby has, and a standby's copy of the slot can be behind them"
	}
	// Logical walsenders wait for every slot named there: one without a
	// streaming standby stalls the relay as well.
	var streaming, idle []string
	for _, name := range f.SynchronizedStandbySlots {
		found := false
		for _, s := range f.Standbys {
			if s.Slot == name && s.State == "streaming" {
				streaming, found = append(streaming, s.Name), true
				break
			}
		}
		if !found {
			idle = append(idle, name)
		}
	}
	if len(idle) > 0 && hidden(f.Standbys) {
		return false, "the role may not see which standbys stream (grant it pg_read_all_stats, or pg_monitor)"
	}
	if len(idle) > 0 {
		return false, fmt.Sprintf("no standby streams through %s of synchronized_standby_slots: logical decoding waits for it, so the relay stalls",
			strings.Join(idle, ", "))
	}
	if len(copies) == 0 {
		return true, fmt.Sprintf("failover slot; standby %s streams (its copy of the slot is not verified: only the standby shows it, and the database URL names no standby)",
			strings.Join(streaming, ", "))
	}
	var good, bad []string
	for _, c := range copies {
		switch {
		case c.Persistent():
			good = append(good, c.Host)
		case !c.Exists:
			bad = append(bad, c.Host+" has no copy (sync_replication_slots off, or hot_standby_feedback, primary_slot_name or a dbname in primary_conninfo missing)")
		case c.Invalidated:
			bad = append(bad, c.Host+"'s copy is invalidated")
		default:
			bad = append(bad, c.Host+"'s copy is not persistent yet (it would be dropped at promotion)")
		}
	}
	if len(good) == 0 {
		return false, strings.Join(bad, "; ")
	}
	why = fmt.Sprintf("failover slot; persistent copy on %s", strings.Join(good, ", "))
	if len(bad) > 0 {
		why += "; but " + strings.Join(bad, "; ")
	}
	return true, why
}
