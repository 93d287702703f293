-- API keys for systems and scripts (`paraaf keys create`): only the SHA-256 of a key is kept.
CREATE TABLE api_keys (
    id         uuid        PRIMARY KEY,
    org        text        NOT NULL,
    name       text        NOT NULL,
    scopes     text[]      NOT NULL CHECK (cardinality(scopes) > 0),
    key_hash   bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (org, name) WHERE revoked_at IS NULL;
