-- The secrets of webhooks the engine registered at a provider for a trigger: the `whsec_` secret
-- Stripe returns when it creates an endpoint, the secret the engine chose for a GitHub hook.
-- Deliveries to the trigger are verified with it. A plain table, not an event: a secret has no
-- place in a log that auditors read and that is never edited, and disabling the trigger deletes
-- its row, secret and all.
--
-- `secret` is sealed like a connection's credentials (src/connections/cipher.rs), its associated
-- data naming the trigger, its organisation and its provider, so a value copied into another row
-- does not decrypt there.
CREATE TABLE webhook_secrets
(
    trigger_id  text PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organisations (id),
    provider_id text NOT NULL,
    secret      blob NOT NULL,
    created_at  text NOT NULL
) STRICT;
