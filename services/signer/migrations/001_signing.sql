-- Certificate authorities, signer certificates, signing requests and their one-time links.

CREATE TABLE authorities (
    org        text        PRIMARY KEY,
    cert_pem   text        NOT NULL,
    key_pem    text        NOT NULL,  -- PKCS#8, encrypted with the key secret
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE certificates (
    org        text        NOT NULL,
    person_id  text        NOT NULL,
    title      text        NOT NULL,
    name       text        NOT NULL,
    cert_pem   text        NOT NULL,
    key_pem    text        NOT NULL,  -- PKCS#8, encrypted with the key secret
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org, person_id, title)
);

-- The current version of each document being signed; signatures are serialised on this row.
CREATE TABLE documents (
    document_id uuid        PRIMARY KEY,
    org         text        NOT NULL,
    pdf_sha256  text        NOT NULL,
    revision    integer     NOT NULL DEFAULT 0,
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'declined', 'withdrawn')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE requests (
    request_id    uuid        PRIMARY KEY,
    document_id   uuid        NOT NULL REFERENCES documents,
    org           text        NOT NULL,
    step          integer     NOT NULL,
    step_count    integer     NOT NULL,
    action        text        NOT NULL CHECK (action IN ('sign', 'approve')),
    signer        jsonb       NOT NULL,
    on_behalf_of  jsonb,
    title         text        NOT NULL,
    filename      text        NOT NULL,
    submitted_by  jsonb       NOT NULL,
    confidential  boolean     NOT NULL DEFAULT false,
    status        text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'signed', 'declined', 'cancelled', 'reassigned')),
    status_reason text,
    field_name    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz
);
CREATE INDEX requests_by_document ON requests (document_id);

-- Only the SHA-256 of a link token is kept; the token itself exists in the mail alone.
CREATE TABLE tokens (
    token_hash bytea       PRIMARY KEY,
    request_id uuid        NOT NULL REFERENCES requests,
    person_id  text        NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tokens_by_request ON tokens (request_id);
