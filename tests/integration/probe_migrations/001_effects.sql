-- What the probe service's handler did, one row per effect (no unique key: duplicates would show).
CREATE TABLE effects (
    event_id uuid        NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
