-- How many signatures a document will hold (from the router, when known) and
-- where its [SIGnn] placeholders are (found once, at the first signature).
ALTER TABLE requests ADD COLUMN signature_count integer;
ALTER TABLE documents ADD COLUMN placeholders jsonb;
