-- The outgoing mail spool: one row per intent (the command or event that asked for the mail).
CREATE TABLE mails (
    mail_id         uuid        PRIMARY KEY,
    org             text        NOT NULL,
    document_id     uuid,
    kind            text        NOT NULL,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    text_body       text,       -- cleared once sent: a signing link lives only in the mailbox
    html_body       text,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX mails_due ON mails (next_attempt_at) WHERE status = 'pending';
