-- Engine processes sharing this store, by heartbeat: schedules (and polls) are divided among the
-- live ones, and a process that stops heartbeating loses its share to the others.
CREATE TABLE engine_nodes
(
    node_id      text PRIMARY KEY,
    -- Epoch milliseconds, by the process's own clock.
    started_at   bigint NOT NULL,
    heartbeat_at bigint NOT NULL
);
