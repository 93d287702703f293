-- Sealed checkpoints of the chain's head (services/audit/seal.py): kept beside the log so
-- verify finds them, exported (`paraaf audit checkpoints export`) to be kept apart from it.
CREATE TABLE checkpoints (
    seq             bigint      NOT NULL,
    head_hash       text        NOT NULL,
    sealed_at       timestamptz NOT NULL,
    public_key      text        NOT NULL,
    signature       text        NOT NULL,
    timestamp_token text,
    PRIMARY KEY (seq, sealed_at)
);

CREATE FUNCTION checkpoints_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit.checkpoints is append-only';
END $$;
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION checkpoints_are_append_only();
