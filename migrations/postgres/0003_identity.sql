-- Identity: organisations, their users and API keys, and the key that signs access tokens. These
-- are plain tables, not event streams: they are not part of a trigger's history.
-- Ids are UUIDs as text, like every id in this store (the same SQL then runs on SQLite).
CREATE TABLE organisations
(
    id         text PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The service lower-cases an email before storing or looking it up, so this unique index makes
-- emails unique whatever their case.
CREATE TABLE users
(
    id            text PRIMARY KEY,
    org_id        text        NOT NULL REFERENCES organisations (id),
    email         text        NOT NULL UNIQUE,
    password_hash text        NOT NULL, -- an argon2id PHC string: algorithm, parameters, salt and hash
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_org ON users (org_id);

-- A key is 32 random bytes, shown once; only its SHA-256 (hex) is kept, and a key is found by it.
CREATE TABLE api_keys
(
    id         text PRIMARY KEY,
    org_id     text        NOT NULL REFERENCES organisations (id),
    key_hash   text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_org ON api_keys (org_id);

-- HMAC keys by purpose. Kept in the store so that tokens outlive a restart and every engine
-- process sharing the store accepts the tokens any of them issued.
CREATE TABLE signing_keys
(
    name       text PRIMARY KEY,
    secret     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- At most one row: claimed by the first-run admin bootstrap, so that of several processes starting
-- at once on an empty store exactly one creates the admin.
CREATE TABLE identity_bootstrap
(
    singleton  integer PRIMARY KEY CHECK (singleton = 1),
    created_at timestamptz NOT NULL DEFAULT now()
);
