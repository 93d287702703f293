-- Mails no longer hold a link: they hold a placeholder, and the sender asks the signer
-- for the link at the moment it sends (link_kind says which: a signing or a download link).
ALTER TABLE mails ADD COLUMN link_kind text CHECK (link_kind IN ('signing', 'download'));
ALTER TABLE mails ADD COLUMN link_person text;  -- whose download link

-- Link mails queued by an earlier version hold a live link in readable form: they do not
-- go out (the signer's links stay valid; reminders bring a new one), and their text goes.
UPDATE mails SET status = 'cancelled', text_body = NULL, html_body = NULL,
       last_error = 'queued by an earlier version with the link inside; not sent'
 WHERE status = 'pending'
   AND kind IN ('signature_request', 'signature_reminder', 'signature_reassigned', 'document_completed');
UPDATE mails SET text_body = NULL, html_body = NULL WHERE status <> 'pending';
