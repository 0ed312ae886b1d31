-- bus.outbox refuses rows written under a replication origin, so that the
-- relay may stream with pgoutput's origin 'none' (PostgreSQL 16+), which
-- drops every change made under an origin, the relay's own flips included.
-- bus.outbox_origin_guard records from which WAL position on every committed
-- insert went through the trigger: the relay filters only a stream that
-- starts at or after it, and only while the trigger is the one recorded there
-- (trigger_xmin changes whenever the trigger is dropped, recreated, disabled
-- or enabled).
--
-- The trigger is ENABLE ALWAYS, so it fires in logical replication apply
-- workers too (they run with session_replication_role = replica), and row
-- level, since apply workers fire no statement triggers. Its cost: about
-- 1 µs per inserted row (PostgreSQL 17, single-row INSERTs). A CHECK
-- calling the same test cost twice that, and to spare the flip (which runs
-- under the relay's origin) it would have to pass rows inserted as already
-- published, which the relay streams too.
--
-- The function is SECURITY DEFINER because pg_replication_origin_session_is_setup()
-- is not executable by PUBLIC: it runs with its owner's (the migrating
-- role's) privileges, and is only installed when that role may execute it.
-- Without it the relay streams unfiltered (and says so); run `cdcrelay
-- migrate` again after the GRANT to install it.
--
-- This file leaves a trigger an operator disabled alone; the relay then
-- streams unfiltered. A trigger that is enabled but not the one recorded
-- (dropped and recreated, or disabled and enabled again) is recorded anew,
-- after waiting for every insert in flight (CREATE TRIGGER and LOCK TABLE
-- take SHARE ROW EXCLUSIVE, which waits for writers and holds new ones
-- until this transaction commits), so that every insert committing after
-- the recorded position went through the trigger.
CREATE TABLE IF NOT EXISTS bus.outbox_origin_guard (
  one           boolean PRIMARY KEY DEFAULT true CHECK (one),
  guarded_since pg_lsn NOT NULL,
  trigger_xmin  xid NOT NULL
);

COMMENT ON TABLE bus.outbox_origin_guard IS
  'Since which WAL position bus.outbox has refused inserts made under a replication origin (cdcrelay''s origin filter); written by cdcrelay migrate.';

CREATE OR REPLACE FUNCTION bus.outbox_refuse_replication_origin() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $fn$
BEGIN
  IF pg_catalog.pg_replication_origin_session_is_setup() THEN
    RAISE EXCEPTION 'bus.outbox refuses rows written under a replication origin'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'cdcrelay streams with pgoutput''s origin filter (PostgreSQL 16+), which drops changes made under any replication origin: this event would never be published.',
            HINT = 'Insert outbox rows from a session without a replication origin, or run every cdcrelay with --origin-filter=false and then disable trigger outbox_insert_outside_replication_origin.';
  END IF;
  RETURN NEW;
END
$fn$;

COMMENT ON FUNCTION bus.outbox_refuse_replication_origin() IS
  'Refuses bus.outbox inserts made under a replication origin, which cdcrelay''s origin filter would drop.';

DO $guard$
DECLARE
  state "char";
  recorded xid;
  current xid;
BEGIN
  IF NOT has_function_privilege('pg_catalog.pg_replication_origin_session_is_setup()', 'EXECUTE') THEN
    RAISE NOTICE 'bus.outbox has no origin guard: role % may not execute pg_replication_origin_session_is_setup(), so cdcrelay streams unfiltered (its walsender decodes every flip)', current_user
      USING HINT = format('GRANT EXECUTE ON FUNCTION pg_replication_origin_session_is_setup() TO %I, then run cdcrelay migrate again.', current_user);
    RETURN;
  END IF;

  SELECT t.tgenabled, t.xmin INTO state, current
    FROM pg_trigger t
   WHERE t.tgrelid = 'bus.outbox'::regclass AND t.tgname = 'outbox_insert_outside_replication_origin';
  IF NOT FOUND THEN
    CREATE TRIGGER outbox_insert_outside_replication_origin BEFORE INSERT ON bus.outbox
      FOR EACH ROW EXECUTE FUNCTION bus.outbox_refuse_replication_origin();
    ALTER TABLE bus.outbox ENABLE ALWAYS TRIGGER outbox_insert_outside_replication_origin;
  ELSIF state <> 'A' THEN
    RAISE NOTICE 'trigger outbox_insert_outside_replication_origin on bus.outbox is not ENABLE ALWAYS, so cdcrelay streams unfiltered (its walsender decodes every flip)'
      USING HINT = 'ALTER TABLE bus.outbox ENABLE ALWAYS TRIGGER outbox_insert_outside_replication_origin, then run cdcrelay migrate again.';
    RETURN;
  ELSE
    SELECT g.trigger_xmin INTO recorded FROM bus.outbox_origin_guard g;
    IF recorded = current THEN
      RETURN;
    END IF;
    LOCK TABLE bus.outbox IN SHARE ROW EXCLUSIVE MODE;
  END IF;

  -- Read after the lock: every insert that did not go through the trigger
  -- has committed below this position.
  INSERT INTO bus.outbox_origin_guard (guarded_since, trigger_xmin)
  SELECT pg_current_wal_insert_lsn(), t.xmin
    FROM pg_trigger t
   WHERE t.tgrelid = 'bus.outbox'::regclass AND t.tgname = 'outbox_insert_outside_replication_origin'
  ON CONFLICT (one) DO UPDATE SET guarded_since = EXCLUDED.guarded_since, trigger_xmin = EXCLUDED.trigger_xmin;
END
$guard$;
