-- A document's due date, when its submission named one (SubmitDocument.due_at): every request
-- the router makes for it carries it, so the mails show it and the reminders follow it.
-- Documents submitted before have none: the notifier's default due date still applies to them.
ALTER TABLE instances ADD COLUMN due_at timestamptz;
