-- bus.uuidv7(): an RFC 9562 version 7 UUID. 48 bits of Unix time in
-- milliseconds, the version, then the sub-millisecond fraction in the 12
-- rand_a bits (RFC 9562 section 6.2, method 3), so ids from one session sort
-- in the order they were made down to the microsecond; the variant and the
-- remaining 62 bits come from gen_random_uuid().
--
-- This file is the only definition; bus.outbox.event_id's default and
-- bus.publish call it.
CREATE OR REPLACE FUNCTION bus.uuidv7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
           overlay(uuid_send(gen_random_uuid())
                   PLACING substring(int8send(t.ms) FROM 3)        -- 6 bytes of milliseconds
                           || int2send((x'7000'::int + t.sub)::int2) -- version 7, 12-bit fraction
                   FROM 1 FOR 8),
           'hex')::uuid
    FROM (SELECT floor(e.ms)::int8 AS ms,
                 floor((e.ms - floor(e.ms)) * 4096)::int AS sub
            FROM (SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms) AS e) AS t
$$;

COMMENT ON FUNCTION bus.uuidv7() IS
  'RFC 9562 UUIDv7: millisecond Unix time, 12-bit sub-millisecond fraction, 62 random bits.';
