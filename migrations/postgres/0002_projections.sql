-- Where each projection has read the log up to. Written in the same transaction as its read model.
CREATE TABLE projection_checkpoints
(
    name       text PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projection_checkpoints (name, position) VALUES ('triggers', 0);

-- The trigger read model: the record as JSON, plus the columns the GET endpoints filter on.
CREATE TABLE trigger_view
(
    project_trigger_id text PRIMARY KEY,
    org_id             text    NOT NULL,
    project_id         text    NOT NULL,
    deleted            boolean NOT NULL,
    last_position      bigint  NOT NULL,
    record             jsonb   NOT NULL
);
CREATE INDEX trigger_view_org_project ON trigger_view (org_id, project_id);
