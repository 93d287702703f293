-- How a person wants to hear of requests (optional, sheet `people` column `mails`):
-- 'individual' (a mail per request, always) or 'digest' (above PARAAF_DIGEST_THRESHOLD
-- waiting requests, one overview a day instead). The notifier reads it.
ALTER TABLE people ADD COLUMN mails text NOT NULL DEFAULT 'individual' CHECK (mails IN ('individual', 'digest'));
