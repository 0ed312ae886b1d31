-- bus.publish: write one event into the outbox from SQL (psql, triggers,
-- services in any language). It takes part in the caller's transaction like
-- any INSERT: the event is published if and only if that transaction commits.
-- Returns the event id, which is also the NATS message id.
CREATE OR REPLACE FUNCTION bus.publish(subject text, payload bytea, headers jsonb DEFAULT NULL)
RETURNS uuid LANGUAGE sql VOLATILE AS $$
  INSERT INTO bus.outbox (event_id, subject, payload, headers)
  VALUES (bus.uuidv7(), publish.subject, publish.payload, publish.headers)
  RETURNING event_id
$$;

-- The text form stores the payload's UTF-8 bytes. It exists for string
-- literals: bus.publish('orders.created', '{"id": 1}') resolves here (an
-- untyped literal prefers the text overload), where the bytea form would read
-- backslashes in the literal as bytea escapes. A driver that leaves a
-- parameter's type to the server also lands here, so send binary payloads as
-- $2::bytea.
CREATE OR REPLACE FUNCTION bus.publish(subject text, payload text, headers jsonb DEFAULT NULL)
RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT bus.publish(publish.subject, convert_to(publish.payload, 'UTF8'), publish.headers)
$$;

COMMENT ON FUNCTION bus.publish(text, bytea, jsonb) IS
  'Insert an event into bus.outbox in the current transaction; returns its event_id (UUIDv7).';
COMMENT ON FUNCTION bus.publish(text, text, jsonb) IS
  'bus.publish with a text payload, stored as its UTF-8 bytes.';
