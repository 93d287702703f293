-- The systems allowed to submit (`paraaf sources add`): the one org each submits for,
-- the flows and submitters it may use (NULL: any of its org's), and ad-hoc steps.
CREATE TABLE sources (
    source       text        PRIMARY KEY,
    org          text        NOT NULL,
    flows        text[],
    submitters   text[],
    ad_hoc_steps boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
