-- 0002_dead_letter: events JetStream refused for good (no stream for the
-- subject, payload too large), kept with the error so an operator can see
-- them and replay them. Keyed by event_id: a replay republishes with the same
-- Nats-Msg-Id, and an event is dead-lettered at most once.
CREATE TABLE bus.dead_letter (
  event_id         uuid PRIMARY KEY,
  outbox_id        bigint NOT NULL,
  subject          text NOT NULL,
  payload          bytea NOT NULL,
  headers          jsonb,
  created_at       timestamptz NOT NULL,
  error            text NOT NULL,
  dead_lettered_at timestamptz NOT NULL DEFAULT now(),
  replayed_at      timestamptz
);

COMMENT ON TABLE bus.dead_letter IS
  'Outbox events JetStream refused for good, with its error. replayed_at is set when an operator republishes one.';
COMMENT ON COLUMN bus.dead_letter.outbox_id IS
  'bus.outbox.id of the event when it was dead-lettered; the outbox row may since have been pruned.';
