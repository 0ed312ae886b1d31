package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what the functions below need from an ordinary (non-replication)
// connection: *pgx.Conn, *pgxpool.Pool and pgx.Tx all qualify.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Slot is a row of pg_replication_slots.
type Slot struct {
	Name      string
	Type      string // "logical" or "physical"
	Plugin    string
	Database  string
	WALStatus string // reserved, extended, unreserved, lost; empty before PostgreSQL 13
	Active    bool
	ActivePID int32 // 0 when inactive
	// ConfirmedFlush is the position the consumer last confirmed: streaming
	// resumes with the first transaction committing after it.
	ConfirmedFlush pglogrepl.LSN
	Restart        pglogrepl.LSN
	// Invalidated is true when the slot can no longer stream: the WAL it
	// needed was removed (wal_status lost) or, on 16+, it was invalidated
	// for another reason. Drop it, recreate it and backfill.
	Invalidated bool
	// InvalidationReason is the server's word for why (PostgreSQL 17+:
	// wal_removed, rows_removed, wal_level_insufficient, and on 18
	// idle_timeout), empty when it does not say.
	InvalidationReason string
	Exists             bool
}

// lookupSlotSQL reads optional columns through to_jsonb so the one query
// works on every supported server version.
const lookupSlotSQL = `
SELECT s.slot_name::text,
       s.slot_type,
       coalesce(s.plugin::text, ''),
       coalesce(s.database::text, ''),
       coalesce(j->>'wal_status', ''),
       s.active,
       coalesce(s.active_pid, 0),
       coalesce(s.confirmed_flush_lsn::text, ''),
       coalesce(s.restart_lsn::text, ''),
       coalesce(j->>'wal_status', '') = 'lost'
         OR coalesce((j->>'conflicting')::boolean, false)
         OR j->>'invalidation_reason' IS NOT NULL,
       coalesce(j->>'invalidation_reason', '')
FROM pg_replication_slots s, to_jsonb(s) j
WHERE s.slot_name = $1`

// LookupSlot reads the slot's row; Exists is false when there is none.
func LookupSlot(ctx context.Context, q Querier, name string) (Slot, error) {
	var (
		s                Slot
		confirmed, start string
	)
	err := q.QueryRow(ctx, lookupSlotSQL, name).Scan(&s.Name, &s.Type, &s.Plugin, &s.Database,
		&s.WALStatus, &s.Active, &s.ActivePID, &confirmed, &start, &s.Invalidated, &s.InvalidationReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return Slot{Name: name}, nil
	}
	if err != nil {
		return Slot{}, fmt.Errorf("look up slot %s: %w", name, err)
	}
	s.Exists = true
	if s.ConfirmedFlush, err = parseOptionalLSN(confirmed); err != nil {
		return Slot{}, fmt.Errorf("look up slot %s: confirmed_flush_lsn: %w", name, err)
	}
	if s.Restart, err = parseOptionalLSN(start); err != nil {
		return Slot{}, fmt.Errorf("look up slot %s: restart_lsn: %w", name, err)
	}
	return s, nil
}

func parseOptionalLSN(s string) (pglogrepl.LSN, error) {
	if s == "" {
		return 0, nil
	}
	return pglogrepl.ParseLSN(s)
}

// terminatePoll is how often TerminateActive looks at the slot again, and
// terminateResend how long it waits before signalling the same backend again.
const (
	terminatePoll   = 50 * time.Millisecond
	terminateResend = time.Second
)

// TerminateActive ends the backend holding the slot (a deposed leader's
// walsender: holding the leader lock proves it lost) and waits until the slot
// is inactive or ctx ends. An inactive or missing slot returns at once.
//
// The role needs the right to signal that backend: the same role, membership
// in it, or pg_signal_backend (never a superuser's backend).
func TerminateActive(ctx context.Context, q Querier, name string) error {
	var (
		signalled int32
		sentAt    time.Time
	)
	for {
		s, err := LookupSlot(ctx, q, name)
		if err != nil {
			return fmt.Errorf("terminate holder of slot %s: %w", name, err)
		}
		if !s.Exists || !s.Active {
			return nil
		}
		if s.ActivePID != 0 && (s.ActivePID != signalled || time.Since(sentAt) >= terminateResend) {
			// false only means the process is already gone: look again.
			var ok bool
			if err := q.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, s.ActivePID).Scan(&ok); err != nil {
				return fmt.Errorf("terminate backend %d holding slot %s: %w", s.ActivePID, name, err)
			}
			signalled, sentAt = s.ActivePID, time.Now()
		}
		t := time.NewTimer(terminatePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for slot %s to be released by backend %d: %w", name, s.ActivePID, ctx.Err())
		case <-t.C:
		}
	}
}
