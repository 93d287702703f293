-- Private keys are encrypted (AES-256-GCM) under a key derived once per start from
-- PARAAF_KEY_SECRET with scrypt; these are the derivation's parameters and a value
-- that tells a wrong secret from a right one.
CREATE TABLE key_encryption (
    id          integer     PRIMARY KEY CHECK (id = 1),
    salt        bytea       NOT NULL,
    n           integer     NOT NULL,
    r           integer     NOT NULL,
    p           integer     NOT NULL,
    check_value bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
