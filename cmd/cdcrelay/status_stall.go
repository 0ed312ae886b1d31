package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/replication"
)

// slotCreationBlockers finds a walsender creating the slot and says what it
// waits for (empty when none waits): creating a logical slot waits for every
// transaction that had an xid when it began.
func slotCreationBlockers(ctx context.Context, conn *pgx.Conn, slot string) (string, error) {
	var pid uint32
	err := conn.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
WHERE backend_type = 'walsender' AND query ILIKE 'CREATE_REPLICATION_SLOT%' AND strpos(query, '"' || $1 || '"') > 0
ORDER BY backend_start LIMIT 1`, slot).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find the walsender creating slot %s: %w", slot, err)
	}
	bs, err := replication.Blockers(ctx, conn, pid)
	if err != nil {
		return "", err
	}
	return replication.Describe(bs), nil
}
