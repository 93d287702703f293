-- Bulk signing from the portal: a run is one confirmation of a selection; each of its
-- items is signed through the same path as a single link (its own transaction, its
-- own events), and what became of it is kept here for the page that shows progress.

CREATE TABLE bulk_runs (
    run_id       uuid        PRIMARY KEY,  -- the confirmation form's own id: sending it twice is one run
    org          text        NOT NULL,
    person_id    text        NOT NULL,
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz
);
CREATE INDEX bulk_runs_by_person ON bulk_runs (org, person_id, created_at);

CREATE TABLE bulk_items (
    run_id       uuid        NOT NULL REFERENCES bulk_runs ON DELETE CASCADE,
    position     int         NOT NULL,
    request_id   uuid        NOT NULL,
    title        text        NOT NULL,
    outcome      text        NOT NULL DEFAULT 'waiting' CHECK (outcome IN ('waiting', 'signed', 'approved', 'failed')),
    reason       text,       -- why it failed: a link refusal's code (withdrawn, not_yet, ...) or 'unavailable'
    decided_at   timestamptz,
    PRIMARY KEY (run_id, position)
);
