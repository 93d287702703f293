-- The portal's sign-in mail: its link is one the sender asks the signer for as it sends, like the others.
-- Its request_id holds the sign-in attempt's id (the signer's link API names it request_id too).
ALTER TABLE mails DROP CONSTRAINT mails_link_kind_check;
ALTER TABLE mails ADD CONSTRAINT mails_link_kind_check CHECK (link_kind IN ('signing', 'download', 'sign_in'));
