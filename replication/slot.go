package replication

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
)

// Snapshot is what CreateSlot returns. Every transaction committed before
// ConsistentPoint is visible in the snapshot named Name, and every one
// committed after it comes through the slot: snapshot plus stream has no gap
// and no overlap.
//
// The snapshot lives only until the Conn that created it runs its next
// command (Start included) or closes. Import it first, on another connection,
// with BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT 'Name';
// once imported (Import) it lasts as long as that transaction, and the Conn is
// free to Start. The walsender applies no wal_sender_timeout before Start, so the
// backfill may take as long as it needs (the slot holds WAL meanwhile).
type Snapshot struct {
	Name            string
	ConsistentPoint pglogrepl.LSN
}

// CreateSlot creates a logical slot using pgoutput with an exported snapshot.
// On PostgreSQL 17 and later the slot is created with FAILOVER, so that a
// standby configured with sync_replication_slots keeps it across a failover.
// A slot that already exists fails with an error matching ErrSlotExists.
func (c *Conn) CreateSlot(ctx context.Context, slot string) (Snapshot, error) {
	return c.CreateSlotFailover(ctx, slot, true)
}

// CreateSlotFailover is CreateSlot with the choice of FAILOVER on 17+
// (failover is ignored before).
func (c *Conn) CreateSlotFailover(ctx context.Context, slot string, failover bool) (Snapshot, error) {
	const op = "create replication slot"
	if err := ValidateSlotName(slot); err != nil {
		return Snapshot{}, fmt.Errorf("%s: %w", op, err)
	}
	var sql string
	switch {
	case c.version >= 170000:
		sql = fmt.Sprintf(`CREATE_REPLICATION_SLOT "%s" LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER %t)`, slot, failover)
	case c.version >= 150000:
		sql = fmt.Sprintf(`CREATE_REPLICATION_SLOT "%s" LOGICAL pgoutput (SNAPSHOT 'export')`, slot)
	default:
		sql = fmt.Sprintf(`CREATE_REPLICATION_SLOT "%s" LOGICAL pgoutput EXPORT_SNAPSHOT`, slot)
	}
	res, err := c.exec(ctx, op, sql)
	if err != nil {
		return Snapshot{}, err
	}
	// slot_name, consistent_point, snapshot_name, output_plugin
	if len(res.Rows) != 1 || len(res.Rows[0]) != 4 {
		return Snapshot{}, fmt.Errorf("%s: unexpected result shape %d rows", op, len(res.Rows))
	}
	row := res.Rows[0]
	lsn, err := pglogrepl.ParseLSN(string(row[1]))
	if err != nil {
		return Snapshot{}, fmt.Errorf("%s: consistent point: %w", op, err)
	}
	if len(row[2]) == 0 {
		return Snapshot{}, fmt.Errorf("%s: server exported no snapshot", op)
	}
	return Snapshot{Name: string(row[2]), ConsistentPoint: lsn}, nil
}

// SetFailover makes the slot a failover slot or not (PostgreSQL 17+: a
// standby with sync_replication_slots keeps a copy of a failover slot). The
// slot must not be in use.
func (c *Conn) SetFailover(ctx context.Context, slot string, on bool) error {
	const op = "alter replication slot"
	if err := ValidateSlotName(slot); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err := c.exec(ctx, op, fmt.Sprintf(`ALTER_REPLICATION_SLOT "%s" (FAILOVER %t)`, slot, on))
	return err
}

// SenderTimeout is the wal_sender_timeout of the connection's walsender
// (the role's or database's setting included); 0 when off.
func (c *Conn) SenderTimeout(ctx context.Context) (time.Duration, error) {
	const op = "read wal_sender_timeout"
	res, err := c.exec(ctx, op, `SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout'`)
	if err != nil {
		return 0, err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return 0, fmt.Errorf("%s: unexpected result shape %d rows", op, len(res.Rows))
	}
	ms, err := strconv.ParseInt(string(res.Rows[0][0]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Import makes tx see the snapshot. tx must be REPEATABLE READ (or
// SERIALIZABLE) and have run no query yet.
func (s Snapshot) Import(ctx context.Context, tx Querier) error {
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(s.Name)); err != nil {
		return fmt.Errorf("import snapshot %s: %w", s.Name, err)
	}
	return nil
}

// ValidateSlotName applies the server's rule for slot names (lower-case
// letters, digits and underscores, at most 63 bytes), so a bad --slot fails
// with a clear message before any command is sent. Names that pass are safe to
// quote into replication commands.
func ValidateSlotName(name string) error {
	if name == "" {
		return errors.New("slot name is empty")
	}
	if len(name) > 63 {
		return fmt.Errorf("slot name %q is longer than 63 bytes", name)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if (b < 'a' || b > 'z') && (b < '0' || b > '9') && b != '_' {
			return fmt.Errorf("slot name %q may contain only lower-case letters, digits and underscores", name)
		}
	}
	return nil
}
