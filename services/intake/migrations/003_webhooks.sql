-- Where a source that cannot consume AMQP gets its outcomes (`paraaf sources add --webhook URL`). The secret signs
-- each delivery (HMAC-SHA256), so it is kept as it is: readable only by intake's role and the administrator.
CREATE TABLE webhooks (
    source     text        PRIMARY KEY REFERENCES sources (source) ON DELETE CASCADE,
    url        text        NOT NULL,
    secret     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per outcome for a source with a webhook, written in the outcome's own transaction; the sender delivers
-- it apart from the flow (pending -> delivered, or abandoned after PARAAF_WEBHOOK_RETRY_HOURS).
CREATE TABLE webhook_deliveries (
    delivery_id     uuid        PRIMARY KEY,
    source          text        NOT NULL,
    event           text        NOT NULL,
    document_id     uuid,
    org             text        NOT NULL,
    body            bytea       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    redelivered     boolean     NOT NULL DEFAULT false
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
