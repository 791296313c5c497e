-- The run read model: one row per run (a trigger's firing), folded from the run streams.
-- Times are epoch milliseconds, so both stores compare and order them the same way.
INSERT INTO projection_checkpoints (name, position) VALUES ('runs', 0);

CREATE TABLE run_view
(
    run_id             text PRIMARY KEY,
    project_trigger_id text   NOT NULL,
    org_id             text   NOT NULL,
    status             text   NOT NULL,
    -- When an executor should next look at the run (NULL once it has finished).
    due_at             bigint,
    requested_at       bigint NOT NULL,
    last_position      bigint NOT NULL,
    record             jsonb  NOT NULL
);
-- GET /triggers/{id}/runs: newest first, keyset-paginated on (requested_at, run_id).
CREATE INDEX run_view_trigger ON run_view (project_trigger_id, requested_at DESC, run_id DESC);
-- The executors' queue: only unfinished runs are in it.
CREATE INDEX run_view_due ON run_view (due_at) WHERE due_at IS NOT NULL;

-- The app webhook URLs (/v1/webhooks/slack, /github) look up a provider's triggers.
ALTER TABLE trigger_view ADD COLUMN provider_id text NOT NULL DEFAULT '';
UPDATE trigger_view SET provider_id = record->>'provider_id';
CREATE INDEX trigger_view_provider ON trigger_view (provider_id);
