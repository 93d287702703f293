-- Revoked signer certificates: what the organisation's CRL lists. A revoked
-- certificate's row leaves signer.certificates (the person's next signature gets
-- a new certificate); its serial stays here for as long as the root lives.
CREATE TABLE revoked_certificates (
    org         text        NOT NULL,
    serial      numeric     NOT NULL,
    person_id   text        NOT NULL,
    title       text        NOT NULL,
    name        text        NOT NULL,
    revoked_at  timestamptz NOT NULL,
    reason      text        NOT NULL,
    revoked_by  text        NOT NULL,
    PRIMARY KEY (org, serial)
);
