-- 0003_inbox: which events each consumer has already handled, so a consumer
-- that records an event in the same transaction as its effect handles every
-- event at most once however often JetStream redelivers it.
CREATE TABLE bus.inbox (
  consumer text NOT NULL,
  event_id uuid NOT NULL,
  seen_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);

-- Pruning deletes entries older than the stream's duplicate window.
CREATE INDEX inbox_seen_at_idx ON bus.inbox (seen_at);

COMMENT ON TABLE bus.inbox IS
  'Events a consumer has handled (consumer, event_id = Nats-Msg-Id); rows older than the redelivery horizon can be pruned by seen_at.';
