-- The replay read model: one row per bulk replay, folded from the replay streams, behind
-- GET /replays and GET /replays/{id}, and the list of replays the replayers work on.
-- Times are epoch milliseconds, as in run_view.
INSERT INTO projection_checkpoints (name, position) VALUES ('replays', 0);

CREATE TABLE replay_view
(
    replay_id     text PRIMARY KEY,
    org_id        text   NOT NULL,
    state         text   NOT NULL,
    requested_at  bigint NOT NULL,
    last_position bigint NOT NULL,
    record        jsonb  NOT NULL
);
-- GET /replays: an organisation's, newest first.
CREATE INDEX replay_view_org ON replay_view (org_id, requested_at DESC, replay_id DESC);
-- The replayers' work: only running replays.
CREATE INDEX replay_view_running ON replay_view (requested_at) WHERE state = 'running';
-- A replay's selection by time: an organisation's runs by when they were requested.
CREATE INDEX run_view_org_requested ON run_view (org_id, requested_at);
