-- Links are made when the notifier sends the mail (never carried on the bus or stored
-- in readable form). A newer link for the same request or download revokes the older
-- ones, and so does a mail that could not be delivered (mail_id says which mail a link was for).
ALTER TABLE tokens ADD COLUMN revoked_at timestamptz;
ALTER TABLE tokens ADD COLUMN mail_id uuid;
CREATE INDEX tokens_by_mail ON tokens (mail_id) WHERE mail_id IS NOT NULL;

-- Who may download a completed document; each download link is a token for a grant.
CREATE TABLE download_grants (
    document_id uuid        NOT NULL,
    person_id   text        NOT NULL,
    org         text        NOT NULL,
    pdf_sha256  text        NOT NULL,
    filename    text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, person_id)
);
ALTER TABLE downloads ADD COLUMN revoked_at timestamptz;
ALTER TABLE downloads ADD COLUMN mail_id uuid;
CREATE INDEX downloads_by_grant ON downloads (document_id, person_id);
CREATE INDEX downloads_by_mail ON downloads (mail_id) WHERE mail_id IS NOT NULL;
