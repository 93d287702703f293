-- Content-addressed, immutable PDF versions shared by intake (originals) and signer (signed versions).
CREATE TABLE blob (
    sha256     text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size       integer     NOT NULL,
    data       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
