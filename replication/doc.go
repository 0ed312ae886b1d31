// Package replication speaks PostgreSQL's logical replication protocol for
// the relay: one replication connection (slot creation with an exported
// snapshot, START_REPLICATION with pgoutput, a receive loop that does not
// allocate per frame, standby status updates with every position set
// explicitly), slot inspection and take-over on an ordinary connection, and the
// start-up checks that turn a misconfigured server into one line naming the
// fix.
//
// This package never confirms anything on its own, so a frame that has been
// received is never reported as flushed before its caller says so. Which
// positions may be confirmed, and when, is the slot package's business.
//
// # Server behaviour worth knowing
//
//   - Before PostgreSQL 15 every transaction in the database yields a Begin
//     and a Commit even when nothing in it is published; 15 and later skip
//     empty transactions. Both kinds of Commit are confirmable like any other.
//   - Relation messages (WALStart 0) precede a table's first change in a
//     session and follow schema changes, inside the transaction.
//   - Logical messages emitted with transactional = false arrive at once,
//     outside any Begin/Commit, with WALStart = the message's LSN;
//     transactional ones arrive inside their transaction, only if it commits.
//   - CreateSlot waits until every transaction running when it started has
//     ended: a session idle in transaction, or a prepared transaction, blocks
//     it. Bound its context; Blockers names what it waits for.
//   - A walsender whose application_name synchronous_standby_names matches
//     can be a synchronous standby: commits then wait for its confirms.
package replication
