-- Append-only and hash-chained: hash = sha256(prev_hash || canonical JSON of the event).
CREATE TABLE log (
    seq          bigint      PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    routing_key  text        NOT NULL,
    org          text        NOT NULL,
    document_id  uuid,
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    payload      text        NOT NULL,  -- the canonical JSON that was hashed, byte for byte
    prev_hash    text        NOT NULL,
    hash         text        NOT NULL
);
CREATE INDEX log_by_document ON log (document_id, seq);
CREATE INDEX log_by_type ON log (routing_key, occurred_at);

-- Nobody updates or deletes the log, not even by mistake.
CREATE FUNCTION log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit.log is append-only';
END $$;
CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON log
    FOR EACH ROW EXECUTE FUNCTION log_is_append_only();

-- The chain's head; appending locks this one row, so entries are chained one at a time.
CREATE TABLE head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint  NOT NULL,
    hash text    NOT NULL
);
INSERT INTO head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
