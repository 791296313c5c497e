-- The tamper-evident chain (docs/operations.md "The tamper-evident log"): each event carries
-- hash = SHA-256(previous hash || canonical bytes of the event), and the head row that hands out
-- positions carries the last hash and recorded_at, so that appenders in several processes chain
-- onto one another in commit order.
--
-- The canonical bytes are RFC 8785 JSON, which SQL cannot write, so the engine back-fills the
-- existing rows right after this migration (`Store::migrate`), once: it does so while the head's
-- hash is NULL, and sets it when done. A row that later appears without a hash (an insert that
-- bypassed the engine) therefore stays unchained and `log verify` names it.
ALTER TABLE events ADD COLUMN hash bytea;

ALTER TABLE event_log_head ADD COLUMN hash bytea;
ALTER TABLE event_log_head ADD COLUMN recorded_at timestamptz;
