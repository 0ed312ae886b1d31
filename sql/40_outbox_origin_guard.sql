-- bus.outbox refuses rows written under a replication origin, so that the
-- relay may stream with pgoutput's origin 'none' (PostgreSQL 16+), which
-- drops every change made under an origin, the relay's own flips included.
-- bus.outbox_origin_guard records from which WAL position on every committed
-- insert went through the trigger: the relay filters only a stream that
-- starts at or after it, and only while trigger and function are the ones
-- recorded there (trigger_xmin changes whenever the trigger is dropped,
-- recreated, disabled or enabled; function_xmin whenever the function is
-- replaced).
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
-- is not executable by PUBLIC: it runs with its owner's privileges, and the
-- trigger is only installed when that role may execute it (a migrating
-- superuser grants it). Without the trigger the relay streams unfiltered
-- (and says so); run `cdcrelay migrate` again after the GRANT to install it.
-- It is installed on PostgreSQL 16 and later only, and not while a
-- subscription writes the outbox. The function is replaced only when its
-- text differs, so that its row version, recorded beside the trigger's,
-- changes only when someone replaces it. No SET search_path: that would
-- cost a settings save and restore on every insert, and the body names
-- only pg_catalog's function, schema-qualified.
--
-- The trigger checks the origin when the row is inserted. A transaction
-- that sets up an origin after its inserts, or a COMMIT PREPARED run from a
-- session with an origin, commits under that origin all the same: the
-- README says not to. Nor may one transaction both disable (or replace)
-- the trigger and insert under an origin: the relay's proof reads the WAL
-- position and then the trigger's catalog rows, and such a transaction can
-- commit before that position yet become visible only after the read.
--
-- This file leaves a trigger an operator disabled alone; the relay then
-- streams unfiltered. A trigger that is enabled but not the one recorded
-- (dropped and recreated, or disabled and enabled again) is recorded anew,
-- after waiting for every insert in flight, so that every insert committing
-- after the recorded position went through the trigger.
DO $table$
BEGIN
  IF to_regclass('bus.outbox_origin_guard') IS NULL THEN
    CREATE TABLE bus.outbox_origin_guard (
      one           boolean PRIMARY KEY DEFAULT true CHECK (one),
      guarded_since pg_lsn NOT NULL,
      trigger_xmin  xid NOT NULL,
      function_xmin xid NOT NULL
    );
    COMMENT ON TABLE bus.outbox_origin_guard IS
      'Since which WAL position bus.outbox has refused inserts made under a replication origin (cdcrelay''s origin filter); written by cdcrelay migrate.';
  END IF;
END
$table$;

DO $guard$
DECLARE
  fn constant text := 'bus.outbox_refuse_replication_origin()';
  is_setup constant text := 'pg_catalog.pg_replication_origin_session_is_setup()';
  body constant text := $body$
BEGIN
  IF pg_catalog.pg_replication_origin_session_is_setup() THEN
    RAISE EXCEPTION 'bus.outbox refuses rows written under a replication origin'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'cdcrelay streams with pgoutput''s origin filter (PostgreSQL 16+), which drops changes made under any replication origin: this event would never be published.',
            HINT = 'Insert outbox rows from a session without a replication origin, or run every cdcrelay with --origin-filter=false and then disable trigger outbox_insert_outside_replication_origin.';
  END IF;
  RETURN NEW;
END
$body$;
  owner regrole;
  state "char";
  recorded_trigger xid;
  recorded_function xid;
  trigger_now xid;
  function_now xid;
  old_timeout text;
BEGIN
  IF current_setting('server_version_num')::int < 160000 THEN
    RETURN; -- pgoutput cannot filter before 16: nothing to guard
  END IF;
  IF to_regprocedure(fn) IS NULL OR NOT EXISTS (
      SELECT FROM pg_proc WHERE oid = to_regprocedure(fn) AND prosrc = body AND prosecdef) THEN
    EXECUTE format('CREATE OR REPLACE FUNCTION %s RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS %L', fn, body);
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', fn,
      'Refuses bus.outbox inserts made under a replication origin, which cdcrelay''s origin filter would drop.');
  END IF;

  -- The function runs as its owner: that role must be able to call the
  -- origin test, or every insert fails. A superuser grants it.
  SELECT p.proowner::regrole, p.xmin INTO owner, function_now FROM pg_proc p WHERE p.oid = to_regprocedure(fn);
  IF NOT has_function_privilege(owner, is_setup, 'EXECUTE') THEN
    BEGIN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', is_setup, owner);
    EXCEPTION WHEN insufficient_privilege THEN
      NULL; -- reported below
    END;
  END IF;
  SELECT t.tgenabled, t.xmin INTO state, trigger_now
    FROM pg_trigger t
   WHERE t.tgrelid = 'bus.outbox'::regclass AND t.tgname = 'outbox_insert_outside_replication_origin';
  IF NOT has_function_privilege(owner, is_setup, 'EXECUTE') THEN
    IF state IS NOT NULL AND state <> 'D' THEN
      RAISE EXCEPTION 'every insert into bus.outbox fails: the owner of %, role %, may not execute %', fn, owner, is_setup
        USING ERRCODE = 'insufficient_privilege',
              HINT = format('GRANT EXECUTE ON FUNCTION %s TO %s (or run cdcrelay migrate as a superuser, which does).', is_setup, owner);
    END IF;
    RAISE NOTICE 'bus.outbox has no origin guard: role % may not execute %, so cdcrelay streams unfiltered (its walsender decodes every flip)', owner, is_setup
      USING HINT = format('GRANT EXECUTE ON FUNCTION %s TO %s, then run cdcrelay migrate again.', is_setup, owner);
    RETURN;
  END IF;

  IF state IS NULL THEN
    -- Not where a subscription writes the outbox (a database upgraded by
    -- logical replication): its apply worker inserts under an origin.
    IF EXISTS (SELECT FROM pg_subscription_rel WHERE srrelid = 'bus.outbox'::regclass) THEN
      RAISE NOTICE 'bus.outbox has no origin guard: a subscription writes it; run cdcrelay migrate again once it is dropped';
      RETURN;
    END IF;
  ELSIF state <> 'A' THEN
    RETURN; -- an operator's choice; Inspect warns
  ELSE
    SELECT g.trigger_xmin, g.function_xmin INTO recorded_trigger, recorded_function FROM bus.outbox_origin_guard g;
    IF recorded_trigger = trigger_now AND recorded_function = function_now THEN
      RETURN;
    END IF;
  END IF;

  -- CREATE TRIGGER and LOCK TABLE take SHARE ROW EXCLUSIVE, which waits for
  -- the writers in flight and holds new ones until this transaction ends:
  -- not for longer than 5 s.
  old_timeout := current_setting('lock_timeout');
  PERFORM set_config('lock_timeout', '5s', true);
  BEGIN
    IF state IS NULL THEN
      CREATE TRIGGER outbox_insert_outside_replication_origin BEFORE INSERT ON bus.outbox
        FOR EACH ROW EXECUTE FUNCTION bus.outbox_refuse_replication_origin();
      ALTER TABLE bus.outbox ENABLE ALWAYS TRIGGER outbox_insert_outside_replication_origin;
    ELSE
      LOCK TABLE bus.outbox IN SHARE ROW EXCLUSIVE MODE;
    END IF;
  EXCEPTION WHEN lock_not_available THEN
    PERFORM set_config('lock_timeout', old_timeout, true);
    RAISE NOTICE 'bus.outbox''s origin guard not installed: writers held the table for 5 s; run cdcrelay migrate again';
    RETURN;
  END;
  PERFORM set_config('lock_timeout', old_timeout, true);

  -- Read under the lock: every insert that did not go through the trigger
  -- (and this function) has committed below this position.
  INSERT INTO bus.outbox_origin_guard (guarded_since, trigger_xmin, function_xmin)
  SELECT pg_current_wal_insert_lsn(), t.xmin, p.xmin
    FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
   WHERE t.tgrelid = 'bus.outbox'::regclass AND t.tgname = 'outbox_insert_outside_replication_origin'
  ON CONFLICT (one) DO UPDATE
    SET guarded_since = EXCLUDED.guarded_since, trigger_xmin = EXCLUDED.trigger_xmin, function_xmin = EXCLUDED.function_xmin;
END
$guard$;
