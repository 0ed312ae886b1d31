package replication

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// SlotWAL is the replication slot as the server sees it, with its distance
// from the server's current WAL position.
type SlotWAL struct {
	Slot
	// Current is pg_current_wal_lsn().
	Current pglogrepl.LSN
	// LagBytes is Current minus the confirmed position: WAL the relay has
	// not confirmed. RetainedBytes is Current minus restart_lsn: WAL the slot
	// keeps on disk. Both are -1 when the slot has no such position.
	LagBytes, RetainedBytes int64
	// SafeBytes is the WAL the server can still write before the slot loses
	// WAL it needs (safe_wal_size): max_slot_wal_keep_size minus what it
	// retains. -1 when there is no such limit (max_slot_wal_keep_size = -1),
	// the slot is lost, or the server is older than PostgreSQL 13.
	SafeBytes int64
}

// walSQL reads the server's WAL position and the slot's safe_wal_size, a
// column PostgreSQL 13 added (hence to_jsonb).
const walSQL = `SELECT pg_current_wal_lsn()::text,
       (SELECT (to_jsonb(s)->>'safe_wal_size')::bigint FROM pg_replication_slots s WHERE s.slot_name = $1)`

// ReadSlotWAL reads the slot and the server's WAL position. Both views are
// cheap (in-memory), so this may run at every metrics scrape.
func ReadSlotWAL(ctx context.Context, q Querier, name string) (SlotWAL, error) {
	s, err := LookupSlot(ctx, q, name)
	if err != nil {
		return SlotWAL{}, err
	}
	out := SlotWAL{Slot: s, LagBytes: -1, RetainedBytes: -1, SafeBytes: -1}
	if !s.Exists {
		return out, nil
	}
	var (
		cur  string
		safe *int64
	)
	if err := q.QueryRow(ctx, walSQL, name).Scan(&cur, &safe); err != nil {
		return SlotWAL{}, fmt.Errorf("read current WAL position: %w", err)
	}
	if safe != nil {
		out.SafeBytes = max(*safe, 0)
	}
	if out.Current, err = pglogrepl.ParseLSN(cur); err != nil {
		return SlotWAL{}, fmt.Errorf("read current WAL position: %w", err)
	}
	out.LagBytes = distance(out.Current, s.ConfirmedFlush)
	out.RetainedBytes = distance(out.Current, s.Restart)
	return out, nil
}

func distance(cur, pos pglogrepl.LSN) int64 {
	switch {
	case pos == 0:
		return -1
	case pos >= cur:
		// A slot confirmed up to the server's end, or a hair beyond it as
		// an idle-slot advance can report.
		return 0
	}
	return int64(cur - pos)
}
