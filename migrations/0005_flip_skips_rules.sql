-- 0005_flip_skips_rules: the relay's flip no longer re-checks the subject
-- and header rules of 0001.
--
-- PostgreSQL evaluates every CHECK constraint of a table on every UPDATE,
-- whichever columns changed, so each flip of published_to_nats ran the
-- eight rules again on every flipped row: the subject's regular expression
-- and, for rows with headers, three jsonpath queries. Each rule now reads
-- `published_to_nats OR (rule)`: an INSERT (published_to_nats false) is
-- checked as before, by the same constraint with the same error, and the
-- flip, which sets published_to_nats, skips the rule after one boolean.
--
-- Instructions per row (valgrind, PostgreSQL 15, 4096-row statements,
-- 256-byte payloads), flip / insert:
--                         headers NULL       two headers
--   rules as in 0001      20.3 k / 84.1 k    67.8 k / 131.8 k
--   guarded (this file)   14.5 k / 84.3 k    14.6 k / 132.1 k
--   rules as domains      13.5 k / 83.5 k    13.6 k / 130.6 k
--   no rules at all       13.6 k / 77.2 k    13.6 k / 77.8 k
-- Domains skip the last 1 k (eight guard evaluations) but change the
-- columns' types, and with them the parameter types drivers are told: pgx,
-- for one, then sends []byte or map headers as bytea or not at all (our own
-- outbox.Publish among them) and a []byte subject as its bytea escape.
--
-- It also lets the relay flip rows that break a rule: a poller-era row the
-- upgrade found breaking one (its constraint stays NOT VALID, 0001) made
-- every flip of its batch fail, since NOT VALID spares only the rows that
-- exist, not their new versions.
--
-- A row inserted as already published (published_to_nats true) skips the
-- rules. The relay still streams it, like the poller-era rows a NOT VALID
-- rule lets through: it checks header names itself and dead-letters what
-- NATS refuses.
--
-- The constraints are replaced in one ALTER TABLE, so bus.outbox is read
-- once, under an ACCESS EXCLUSIVE lock that keeps writers waiting: published
-- rows pass on their first boolean, unpublished ones are checked in full.
-- When rows break a rule, each constraint is replaced on its own instead and
-- the ones they break stay NOT VALID (new rows are checked; migrations.Inspect
-- reports them), as in 0001. A constraint already guarded, or missing (an
-- operator dropped it), is left alone.

DO $guard$
DECLARE
  names text[];
  guarded text[]; -- guarded[i] is the new expression of names[i]
BEGIN
  SELECT array_agg(c.conname::text ORDER BY c.conname),
         array_agg(format('published_to_nats OR (%s)', pg_get_expr(c.conbin, c.conrelid)) ORDER BY c.conname)
    INTO names, guarded
    FROM pg_constraint c
   WHERE c.conrelid = 'bus.outbox'::regclass AND c.contype = 'c'
     AND c.conname IN ('outbox_subject_not_empty', 'outbox_subject_too_long', 'outbox_subject_bad_dots',
                       'outbox_subject_no_whitespace', 'outbox_subject_no_wildcards',
                       'outbox_headers_shape', 'outbox_headers_bad_name', 'outbox_headers_reserved_name')
     AND pg_get_expr(c.conbin, c.conrelid) NOT LIKE '(published_to_nats OR %';
  IF names IS NULL THEN
    RETURN;
  END IF;

  BEGIN
    EXECUTE 'ALTER TABLE bus.outbox ' || (
      SELECT string_agg(format('DROP CONSTRAINT %I, ADD CONSTRAINT %I CHECK (%s)', n, n, e), ', ')
        FROM unnest(names, guarded) AS u(n, e));
    RETURN;
  EXCEPTION WHEN check_violation THEN
    NULL; -- back as it was: one by one below
  END;

  FOR i IN 1 .. cardinality(names) LOOP
    EXECUTE format('ALTER TABLE bus.outbox DROP CONSTRAINT %I, ADD CONSTRAINT %I CHECK (%s) NOT VALID',
                   names[i], names[i], guarded[i]);
    BEGIN
      EXECUTE format('ALTER TABLE bus.outbox VALIDATE CONSTRAINT %I', names[i]);
    EXCEPTION WHEN check_violation THEN
      RAISE NOTICE 'unpublished rows of bus.outbox break %; it stays NOT VALID (new rows are checked)', names[i];
    END;
  END LOOP;
END
$guard$;
