-- One-time-per-person download links for a completed document (only the SHA-256 of the token is kept).
CREATE TABLE downloads (
    token_hash  bytea       PRIMARY KEY,
    document_id uuid        NOT NULL,
    org         text        NOT NULL,
    person_id   text        NOT NULL,
    pdf_sha256  text        NOT NULL,
    filename    text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
