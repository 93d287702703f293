-- Reminders, closed requests and ended documents, the moves an absent person
-- is told about, and which request or documents a mail concerns.

-- One row per signing request the notifier has heard of. A request that closes
-- before its first mail was queued still gets a row ('closed'), so a late
-- command cannot reopen it.
CREATE TABLE reminders (
    request_id   uuid        PRIMARY KEY,
    org          text        NOT NULL,
    document_id  uuid        NOT NULL,
    requested_at timestamptz,
    due_at       timestamptz,               -- the date the mails ask it to be signed by
    next_at      timestamptz,               -- when the next reminder is due; NULL when none is
    sent         integer     NOT NULL DEFAULT 0,
    status       text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'exhausted', 'closed')),
    closed_by    text,                      -- the event that closed it, e.g. signature.signed
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reminders_due ON reminders (next_at) WHERE status = 'open';
CREATE INDEX reminders_by_document ON reminders (document_id);

CREATE TABLE ended_documents (
    document_id uuid        PRIMARY KEY,
    org         text        NOT NULL,
    status      text        NOT NULL,
    ended_at    timestamptz NOT NULL DEFAULT now()
);

-- Requests moved away from an absent person, gathered into one notice per absence.
CREATE TABLE moves (
    event_id    uuid        PRIMARY KEY,    -- the signature.reassigned event
    org         text        NOT NULL,
    document_id uuid        NOT NULL,
    person_id   text        NOT NULL,       -- the absent person
    from_person jsonb       NOT NULL,
    to_person   jsonb       NOT NULL,
    title       text        NOT NULL,
    reason      text        NOT NULL,
    moved_at    timestamptz NOT NULL,
    mail_id     uuid                        -- the notice that lists it, once queued
);
CREATE INDEX moves_waiting ON moves (org, person_id, moved_at) WHERE mail_id IS NULL;

ALTER TABLE mails ADD COLUMN request_id uuid;                 -- for signing-link mails
ALTER TABLE mails ADD COLUMN related_documents uuid[];        -- a notice about several documents
ALTER TABLE mails DROP CONSTRAINT mails_status_check;
ALTER TABLE mails ADD CONSTRAINT mails_status_check CHECK (status IN ('pending', 'sent', 'failed', 'cancelled'));
CREATE INDEX mails_by_request ON mails (request_id) WHERE status = 'pending';
