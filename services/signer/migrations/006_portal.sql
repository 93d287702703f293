-- The portal: people signed in (server-side sessions), their sign-in attempts
-- (OIDC round trips and one-time mailed links), and their uploads on their way
-- through intake. Tokens and session ids are stored only as SHA-256.

CREATE TABLE sessions (
    id_hash      bytea       PRIMARY KEY,
    org          text        NOT NULL,
    person_id    text        NOT NULL,
    method       text        NOT NULL CHECK (method IN ('oidc', 'mail')),
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    ended_at     timestamptz
);
CREATE INDEX sessions_by_person ON sessions (org, person_id);

-- A mailed sign-in link: asked for by address, made by the notifier's call at send
-- time (token_hash), used once, within 15 minutes of being made.
CREATE TABLE sign_in_attempts (
    id           uuid        PRIMARY KEY,
    org          text        NOT NULL,
    person_id    text        NOT NULL,
    created_at   timestamptz NOT NULL,
    token_hash   bytea       UNIQUE,
    expires_at   timestamptz,
    used_at      timestamptz
);
CREATE INDEX sign_in_attempts_by_person ON sign_in_attempts (org, person_id, created_at);

-- An OIDC round trip under way: what the callback must find (state), prove (PKCE
-- verifier) and see echoed in the ID token (nonce).
CREATE TABLE oidc_logins (
    state         text        PRIMARY KEY,
    org           text        NOT NULL,
    code_verifier text        NOT NULL,
    nonce         text        NOT NULL,
    created_at    timestamptz NOT NULL,
    used_at       timestamptz
);

-- What a person uploaded through the portal, as intake will know it (source, external_ref).
CREATE TABLE uploads (
    form_id      uuid        PRIMARY KEY,  -- the upload form's own id: sending it twice is one upload
    org          text        NOT NULL,
    person_id    text        NOT NULL,
    source       text        NOT NULL,
    external_ref text        NOT NULL,
    title        text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, external_ref)
);
CREATE INDEX uploads_by_person ON uploads (org, person_id, created_at);
