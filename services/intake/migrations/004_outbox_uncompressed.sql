-- An outcome carries its signed PDF in base64 (tens of kilobytes): PostgreSQL compressed each such outbox row when
-- it was written and decompressed it when the relay read it back, milliseconds later, before deleting it. A row
-- that lives that briefly gains nothing from it; it is kept as it is (out of line, uncompressed). Only new rows.
ALTER TABLE outbox ALTER COLUMN body SET STORAGE EXTERNAL;
