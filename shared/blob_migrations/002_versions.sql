-- Which PDF versions belong to which document: revision 0 is what intake accepted,
-- each later revision a version the signer made. The signer signs nothing else.
CREATE TABLE versions (
    document_id uuid        NOT NULL,
    revision    integer     NOT NULL CHECK (revision >= 0),
    org         text        NOT NULL,
    sha256      text        NOT NULL REFERENCES blob,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, revision)
);
CREATE INDEX versions_by_digest ON versions (sha256);
