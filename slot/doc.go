// Package slot is one leadership term's session on the logical slot: it owns
// the replication connection while streaming, the decoder, whether a
// transaction is open, and the position the term may confirm. It reads
// frames, decodes them and submits what they carry, in commit order, to the
// publish window (a Sink); the checkpoint tells it through Ack what the flips
// made confirmable; it alone talks back to the walsender. A Session is made
// for one term and dropped with it, so no position outlives its term.
//
// The slot's bookkeeping row in bus.relay_slot (Mark) and the heartbeats that
// prove the slot is moving (Heartbeats) live here too.
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
// # Flushed WAL
//
// The server writes a slot's confirmed position to disk at checkpoints,
// and also at once whenever a confirm passes a restart-point candidate
// (LogicalConfirmReceivedLocation → ReplicationSlotSave, about every
// running-xacts record), without flushing WAL first. So after a crash a
// slot may resume from an older position (events come again), but it may
// also have kept a position whose flips were lost with unflushed WAL:
// never confirm a position before the WAL of the writes it depends on is
// flushed (position does this). Anything a logical walsender sends,
// keepalives included, is flushed WAL.
//
// Only the walsender tells how far WAL is flushed, never
// pg_current_wal_flush_lsn(): with synchronized_standby_slots a failover
// slot's walsender sends nothing the standbys have not flushed too, so a
// position confirmed (and synced to a standby) never depends on a flip the
// standby could lose in a failover.
package slot
