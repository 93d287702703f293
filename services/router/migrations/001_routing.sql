-- The directory (who can sign), the flows (who must sign what) and running flow instances.

-- Bumped by every change to an org's directory, so routers can cache it and notice.
CREATE TABLE directory_version (
    org     text   PRIMARY KEY,
    version bigint NOT NULL
);

CREATE TABLE people (
    org        text NOT NULL,
    id         text NOT NULL,
    name       text NOT NULL,
    email      text NOT NULL,
    department text NOT NULL DEFAULT '',
    language   text NOT NULL DEFAULT 'nl' CHECK (language IN ('nl', 'fr', 'en')),
    PRIMARY KEY (org, id)
);

CREATE TABLE roles (
    org     text   NOT NULL,
    key     text   NOT NULL,
    title   text   NOT NULL,
    holders text[] NOT NULL,
    PRIMARY KEY (org, key)
);

CREATE TABLE flows (
    org          text        NOT NULL,
    key          text        NOT NULL,
    title        text        NOT NULL,
    department   text        NOT NULL,
    group_key    text        NOT NULL,
    confidential boolean     NOT NULL DEFAULT false,
    steps        jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org, key)
);

CREATE TABLE instances (
    document_id  uuid        PRIMARY KEY,
    org          text        NOT NULL,
    flow_key     text,
    title        text        NOT NULL,
    filename     text        NOT NULL,
    submitted_by jsonb       NOT NULL,
    confidential boolean     NOT NULL,
    department   text,
    group_key    text,
    steps        jsonb       NOT NULL,
    current_step integer     NOT NULL DEFAULT 0,
    status       text        NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'completed', 'declined', 'withdrawn')),
    pdf_sha256   text        NOT NULL,
    revision     integer     NOT NULL DEFAULT 0,
    signatures   jsonb       NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE requests (
    request_id   uuid        PRIMARY KEY,
    document_id  uuid        NOT NULL REFERENCES instances,
    org          text        NOT NULL,
    step         integer     NOT NULL,
    slot         text        NOT NULL,
    person_id    text        NOT NULL,
    person       jsonb       NOT NULL,
    on_behalf_of jsonb,
    reason       text,
    action       text        NOT NULL CHECK (action IN ('sign', 'approve')),
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'signed', 'declined', 'reassigned', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    decided_at   timestamptz
);
CREATE INDEX requests_by_document ON requests (document_id, step);
CREATE INDEX requests_pending_by_person ON requests (org, person_id) WHERE status = 'pending';
