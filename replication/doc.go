// Package replication speaks PostgreSQL's logical replication protocol for
// the relay: one replication connection (slot creation with an exported
// snapshot, START_REPLICATION with pgoutput, a receive loop that does not
// allocate per frame, standby status updates with every position set
// explicitly), slot inspection and take-over on an ordinary connection, and the
// start-up checks that turn a misconfigured server into one line naming the
// fix.
//
// The relay owns the positions it confirms; this package never confirms
// anything on its own, so a frame that has been received is never reported as
// flushed before the relay says so.
//
// # Which positions may be confirmed
//
// A transaction is done when every event in it is acked and flipped; its
// Commit frame's WALStart (equal to the end LSN in the Commit message) is then
// confirmable, provided every earlier transaction is done too. Confirming the
// commit record's start instead would make the server send the transaction
// again after a restart.
//
// A keepalive's ServerWALEnd is the walsender's sentPtr: how far it has
// decoded, not the server's WAL end. Every transaction of the publication
// that committed below it was sent before the keepalive. Confirm it only when
// (1) every frame received before the keepalive is done, (2) no transaction
// is open (a Begin received without its Commit: keepalives do arrive in the
// middle of large transactions), and (3) it is above what was confirmed
// already (never send a lower position: servers before 18 move the slot
// back). This is what keeps a quiet outbox in a busy database from pinning
// WAL: while the positions the client reported lag sentPtr, the walsender
// sends such a keepalive every time it has caught up and waits for more WAL.
//
// The walsender asks for a reply (ReplyRequested) once wal_sender_timeout/2
// has passed without a status update, and drops the connection at
// wal_sender_timeout. Answer each request at once, and send an update at least
// every 10 s anyway, with the last confirmed position (SendStatus with 0 proves
// liveness without moving the slot).
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
//   - The server writes a slot's confirmed position to disk at checkpoints,
//     and also at once whenever a confirm passes a restart-point candidate
//     (LogicalConfirmReceivedLocation → ReplicationSlotSave, about every
//     running-xacts record), without flushing WAL first. So after a crash a
//     slot may resume from an older position (events come again), but it may
//     also have kept a position whose flips were lost with unflushed WAL:
//     never confirm a position before the WAL of the writes it depends on is
//     flushed (checkpoint.Position does this for the relay). Anything a
//     logical walsender sends, keepalives included, is flushed WAL.
//   - CreateSlot waits until every transaction running when it started has
//     ended: a session idle in transaction, or a prepared transaction, blocks
//     it. Bound its context; Blockers names what it waits for.
//   - A walsender whose application_name synchronous_standby_names matches
//     can be a synchronous standby: commits then wait for its confirms.
package replication
