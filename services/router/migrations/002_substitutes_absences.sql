-- Who stands in for whom, who is away when, and which departments see which documents.

CREATE TABLE substitutes (
    org         text   NOT NULL,
    person_id   text   NOT NULL,
    substitutes text[] NOT NULL,  -- in order: the first available one signs
    PRIMARY KEY (org, person_id)
);

-- [starts_at, ends_at): away from the first instant, back at the second.
CREATE TABLE absences (
    id         uuid        PRIMARY KEY,
    org        text        NOT NULL,
    person_id  text        NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at),
    source     text        NOT NULL CHECK (source IN ('import', 'api')),
    note       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    applied_at timestamptz  -- when pending requests were moved away from the person
);
CREATE INDEX absences_by_person ON absences (org, person_id);
CREATE INDEX absences_to_apply ON absences (starts_at) WHERE applied_at IS NULL;

CREATE TABLE groups (
    org         text    NOT NULL,
    key         text    NOT NULL,
    departments text[]  NOT NULL,
    shielded    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (org, key)
);

ALTER TABLE requests ADD COLUMN replaces uuid;
