-- 0004_relay_slot: which replication slots the relay may trust.
--
-- A slot is created together with an exported snapshot, and the relay first
-- publishes every unpublished row visible in that snapshot (the backfill)
-- before streaming from the slot's consistent point. If the relay dies
-- during the backfill, the slot survives but the rows the backfill had not
-- reached are in neither the stream nor the slot. So the relay records here
-- when a slot's backfill completed, and recreates (and backfills again) any
-- slot it finds without such a record.
CREATE TABLE bus.relay_slot (
  slot_name        text PRIMARY KEY,
  consistent_point pg_lsn NOT NULL,
  backfilled_at    timestamptz
);

COMMENT ON TABLE bus.relay_slot IS
  'Replication slots cdcrelay created, and when the backfill from each slot''s snapshot completed.';
