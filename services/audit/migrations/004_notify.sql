-- Tell whoever listens (the operators' live stream in the signer) that the log grew, once per
-- statement: one INSERT of one entry or of a whole batch is one notification, carrying the
-- highest seq it added. A notification is only a hint to read `seq > last seen`; it is sent at
-- commit (so never ahead of the rows), and a listener that missed one still polls.
CREATE FUNCTION log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('audit_log', (SELECT coalesce(max(seq), 0)::text FROM added));
    RETURN NULL;
END $$;
CREATE TRIGGER log_notify AFTER INSERT ON log REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION log_notify();
