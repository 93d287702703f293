-- The verification code a signed PDF carries on every page (16 digits, the last a
-- check digit; random, unique over the installation) with a keyed hash of the
-- secret printed beside it (HMAC under a key derived from PARAAF_KEY_SECRET:
-- a reader of this table cannot try secrets offline). Made with the first signature.
CREATE TABLE verification_codes (
    code        text        PRIMARY KEY CHECK (code ~ '^[0-9]{16}$'),
    document_id uuid        NOT NULL UNIQUE REFERENCES documents,
    org         text        NOT NULL,
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Wrong code-and-secret pairs on the public check page, counted per client address
-- (an IPv6 address by its /64) and for everyone ('*'), per fixed window: shared by
-- every signer process, so the limit holds however many serve the page.
CREATE TABLE check_failures (
    scope        text        NOT NULL,
    window_start timestamptz NOT NULL,
    failures     integer     NOT NULL,
    PRIMARY KEY (scope, window_start)
);
