-- Daily digests: which person each request waits for (to count them), the requests
-- whose own mail was held back for the person's digest, and the digests sent.
ALTER TABLE reminders ADD COLUMN person_id text;
ALTER TABLE reminders ADD COLUMN recipient jsonb;            -- as the request's command named her (address, language)
ALTER TABLE reminders ADD COLUMN title text;
ALTER TABLE reminders ADD COLUMN held_for_digest boolean NOT NULL DEFAULT false;
ALTER TABLE reminders ADD COLUMN digest_mail_id uuid;        -- the digest that told her of it, once queued
CREATE INDEX reminders_waiting_for ON reminders (org, person_id) WHERE status <> 'closed';

CREATE TABLE digests (
    mail_id     uuid        PRIMARY KEY,
    org         text        NOT NULL,
    person_id   text        NOT NULL,
    waiting     integer     NOT NULL,   -- how many requests it said were waiting
    created_at  timestamptz NOT NULL
);
CREATE INDEX digests_by_person ON digests (org, person_id, created_at);
