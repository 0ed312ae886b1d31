package relay

import (
	"fmt"

	"github.com/cdcrelay/cdcrelay/replication"
)

// invalidation says why the server invalidated a slot, for the log line of
// its recreation.
func invalidation(s replication.Slot) string {
	switch s.InvalidationReason {
	case "idle_timeout":
		return "the server invalidated it after it was unread for idle_replication_slot_timeout (idle_timeout)"
	case "":
		return fmt.Sprintf("the server invalidated it (wal_status %s)", s.WALStatus)
	}
	return fmt.Sprintf("the server invalidated it (%s, wal_status %s)", s.InvalidationReason, s.WALStatus)
}
