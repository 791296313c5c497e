-- When each engine process was up: from its start to its last heartbeat (or its leaving). Unlike
-- engine_nodes, a row outlives its process, so GET /triggers/{id}/explain can tell a slot missed
-- while no process was alive from one missed while one was, and say when the engine came back,
-- for every outage in a window. Kept a year (one row per process start). Epoch milliseconds.
CREATE TABLE engine_uptime
(
    node_id      text PRIMARY KEY,
    started_at   integer NOT NULL,
    last_seen_at integer NOT NULL
) STRICT;
CREATE INDEX engine_uptime_last_seen ON engine_uptime (last_seen_at);

-- The processes alive when this table came: their spans so far.
INSERT INTO engine_uptime (node_id, started_at, last_seen_at)
SELECT node_id, started_at, heartbeat_at FROM engine_nodes;
