-- bus.outbox.event_id defaults to bus.uuidv7(), so a plain INSERT gets a
-- time-ordered id too. Migration 0001 runs before this directory and cannot
-- name the function yet (it uses gen_random_uuid()), so the default is set
-- here, and only when it is not already bus.uuidv7(): ALTER TABLE takes an
-- ACCESS EXCLUSIVE lock that a busy outbox should not see on every migrate.
DO $$
BEGIN
  IF NOT EXISTS (
      SELECT FROM pg_attrdef d
        JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
        JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
                          AND dep.refclassid = 'pg_proc'::regclass
                          AND dep.refobjid = 'bus.uuidv7()'::regprocedure
       WHERE d.adrelid = 'bus.outbox'::regclass AND a.attname = 'event_id') THEN
    ALTER TABLE bus.outbox ALTER COLUMN event_id SET DEFAULT bus.uuidv7();
  END IF;
END
$$;
