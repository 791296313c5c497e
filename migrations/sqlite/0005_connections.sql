-- Connections: what a trigger acts with at its provider (an access token, an API key...). A plain
-- table like identity's, not an event stream. Numbered 0005: 0004 is reserved for work in flight
-- on another branch, and sqlx applies migrations in order whatever gaps there are.
--
-- `credentials` is sealed by the engine (XChaCha20-Poly1305 under TRIGGER_ENGINE_ENCRYPTION_KEY,
-- see src/connections/cipher.rs): one format byte, a 24-byte random nonce, then ciphertext and
-- tag. Its associated data is the row's id, org_id and provider_id, so a value copied into another
-- row does not decrypt there. Deleting the row deletes the credentials.
CREATE TABLE connections
(
    id          text PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organisations (id),
    provider_id text NOT NULL,
    name        text NOT NULL,
    credentials blob NOT NULL,
    created_at  text NOT NULL, -- set by the engine, so an answer and a later read agree
    created_by  text NOT NULL  -- the user who created it
) STRICT;
CREATE INDEX connections_org ON connections (org_id, created_at);
