-- One row per accepted submission; (org, source, external_ref) makes resubmission idempotent.
CREATE TABLE documents (
    document_id  uuid        PRIMARY KEY,
    org          text        NOT NULL,
    source       text        NOT NULL,
    external_ref text        NOT NULL,
    title        text        NOT NULL,
    flow         text,
    steps        jsonb,
    submitted_by text        NOT NULL,
    confidential boolean     NOT NULL,
    filename     text        NOT NULL,
    language     text        NOT NULL,
    metadata     jsonb       NOT NULL,
    pdf_sha256   text        NOT NULL,
    signed_sha256 text,
    status       text        NOT NULL DEFAULT 'submitted',
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org, source, external_ref)
);

-- Every refused submission, so an operator can answer "why was mine refused?".
CREATE TABLE rejections (
    id           uuid        PRIMARY KEY,
    org          text        NOT NULL,
    source       text        NOT NULL,
    external_ref text,
    document_id  uuid,
    code         text        NOT NULL,
    reason       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
