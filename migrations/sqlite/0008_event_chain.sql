-- The tamper-evident chain (docs/operations.md "The tamper-evident log"): each event carries
-- hash = SHA-256(previous hash || canonical bytes of the event), and the head row that hands out
-- positions carries the last hash and recorded_at.
--
-- The canonical bytes are RFC 8785 JSON, and SQLite has no SHA-256, so the engine back-fills the
-- existing rows right after this migration (`Store::migrate`), once: it does so while the head's
-- hash is NULL, and sets it when done. A row that later appears without a hash (an insert that
-- bypassed the engine) therefore stays unchained and `log verify` names it.
ALTER TABLE events ADD COLUMN hash blob;

ALTER TABLE event_log_head ADD COLUMN hash blob;
ALTER TABLE event_log_head ADD COLUMN recorded_at text;
