package metrics

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/replication"
)

// Slot is the replication slot as the server sees it, with its distance
// from the server's current WAL position.
type Slot struct {
	replication.Slot
	// Current is pg_current_wal_lsn().
	Current pglogrepl.LSN
	// LagBytes is Current minus the confirmed position: WAL the relay has
	// not confirmed. RetainedBytes is Current minus restart_lsn: WAL the slot
	// keeps on disk. Both are -1 when the slot has no such position.
	LagBytes, RetainedBytes int64
}

// ReadSlot reads the slot and the server's WAL position. Both views are
// cheap (in-memory), so this runs at every scrape.
func ReadSlot(ctx context.Context, q replication.Querier, name string) (Slot, error) {
	s, err := replication.LookupSlot(ctx, q, name)
	if err != nil {
		return Slot{}, err
	}
	out := Slot{Slot: s, LagBytes: -1, RetainedBytes: -1}
	if !s.Exists {
		return out, nil
	}
	var cur string
	if err := q.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&cur); err != nil {
		return Slot{}, fmt.Errorf("read current WAL position: %w", err)
	}
	if out.Current, err = pglogrepl.ParseLSN(cur); err != nil {
		return Slot{}, fmt.Errorf("read current WAL position: %w", err)
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
