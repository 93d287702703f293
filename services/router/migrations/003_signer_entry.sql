-- A request answers one signer entry of its step (`person:<id>` or `role:<key>`): call it that.
ALTER TABLE requests RENAME COLUMN slot TO entry;
