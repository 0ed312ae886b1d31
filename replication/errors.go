package replication

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATE codes the relay branches on.
const (
	codeObjectInUse     = "55006" // object_in_use: slot held by another walsender
	codeUndefinedObject = "42704" // undefined_object: no such slot
	codeDuplicateObject = "42710" // duplicate_object: slot already exists
)

var (
	// ErrTimeout is returned by Receive when its deadline passes first. The
	// connection stays usable.
	ErrTimeout = errors.New("replication: receive timed out")

	// ErrConnLost marks every error after which the Conn is closed and must be
	// replaced by a new Connect. Test with IsConnLost or errors.Is.
	ErrConnLost = errors.New("replication connection lost")

	// ErrSlotActive is matched (errors.Is) by a server error saying another
	// backend is using the slot (SQLSTATE 55006, object_in_use): typically a
	// deposed leader's walsender. TerminateActive frees the slot.
	ErrSlotActive = errors.New("replication slot is active for another backend")

	// ErrSlotMissing is matched by a server error saying the slot does not
	// exist (SQLSTATE 42704, undefined_object), e.g. Start after the slot was
	// dropped or after a failover to a standby that never had it.
	ErrSlotMissing = errors.New("replication slot does not exist")

	// ErrSlotExists is matched by a server error saying the slot already
	// exists (SQLSTATE 42710, duplicate_object), e.g. two CreateSlot racing.
	ErrSlotExists = errors.New("replication slot already exists")
)

// IsConnLost reports whether err means the replication connection is gone:
// the Conn has been closed and the caller must Connect again (with back-off).
// It is false for ErrTimeout and for server errors answered to a command
// (ErrSlotActive, ErrSlotMissing, ...), after which the Conn is still usable.
func IsConnLost(err error) bool { return errors.Is(err, ErrConnLost) }

// serverError adds the sentinel matching a server error's SQLSTATE, keeping
// the *pgconn.PgError reachable through errors.As.
func serverError(op string, pgErr *pgconn.PgError) error {
	var kind error
	switch pgErr.Code {
	case codeObjectInUse:
		kind = ErrSlotActive
	case codeUndefinedObject:
		kind = ErrSlotMissing
	case codeDuplicateObject:
		kind = ErrSlotExists
	}
	if kind == nil {
		return fmt.Errorf("%s: %w", op, pgErr)
	}
	return fmt.Errorf("%s: %w: %w", op, kind, pgErr)
}

// lostError wraps err with ErrConnLost.
func lostError(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrConnLost, err)
}
