-- The organisations (cities) one installation serves (`paraaf org create`): each record and event names one by its key.
-- portal_url: where its people's portal and links live; the signer tells orgs apart by the Host a page is asked on.
CREATE TABLE orgs (
    key        text        PRIMARY KEY CHECK (key ~ '^[a-z0-9][a-z0-9_-]{1,39}$'),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    portal_url text        UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
