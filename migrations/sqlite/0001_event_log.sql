-- The event log. Column names and the primary key follow sqlite-es, whose repository replays
-- streams; position, event_id and recorded_at are ours (see docs/architecture.md).
CREATE TABLE events
(
    aggregate_type text                           NOT NULL,
    aggregate_id   text                           NOT NULL,
    sequence       integer CHECK (sequence >= 0)  NOT NULL,
    event_type     text                           NOT NULL,
    event_version  text                           NOT NULL,
    payload        text                           NOT NULL,
    metadata       text                           NOT NULL,
    position       integer,
    event_id       text                           NOT NULL DEFAULT (
        lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
        substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) ||
        substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    recorded_at    text                           NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;
CREATE UNIQUE INDEX events_position ON events (position);
CREATE UNIQUE INDEX events_event_id ON events (event_id);

-- SQLite has one writer at a time, so commit order is append order; the counter row keeps
-- positions gap-free because a rolled-back append rolls its bump back too. The engine bumps it
-- once per batch and numbers its rows itself; the trigger numbers any other insert.
CREATE TABLE event_log_head
(
    singleton integer PRIMARY KEY CHECK (singleton = 1),
    position  integer NOT NULL
) STRICT;
INSERT INTO event_log_head (singleton, position) VALUES (1, 0);

CREATE TRIGGER events_assign_position
    AFTER INSERT ON events
    WHEN NEW.position IS NULL
BEGIN
    UPDATE event_log_head SET position = position + 1 WHERE singleton = 1;
    UPDATE events SET position = (SELECT position FROM event_log_head WHERE singleton = 1)
        WHERE rowid = NEW.rowid;
END;

-- Snapshots are a cache of aggregate state at a sequence: one row per stream, replaced forward only.
CREATE TABLE snapshots
(
    aggregate_type   text                                  NOT NULL,
    aggregate_id     text                                  NOT NULL,
    last_sequence    integer CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL,
    payload          text                                  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
) STRICT;
