-- The event log. Column names and the primary key follow postgres-es, whose repository replays
-- streams; position, event_id and recorded_at are ours (see docs/architecture.md).
CREATE TABLE events
(
    aggregate_type text                          NOT NULL,
    aggregate_id   text                          NOT NULL,
    sequence       bigint CHECK (sequence >= 0)  NOT NULL,
    event_type     text                          NOT NULL,
    event_version  text                          NOT NULL,
    payload        jsonb                         NOT NULL,
    metadata       jsonb                         NOT NULL,
    position       bigint                        NOT NULL,
    event_id       uuid                          NOT NULL DEFAULT gen_random_uuid(),
    recorded_at    timestamptz                   NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX events_position ON events (position);
CREATE UNIQUE INDEX events_event_id ON events (event_id);

-- One row holding the last position handed out. Appenders bump it under its row lock, which they
-- keep until they commit: positions are therefore gap-free (a rolled-back bump is undone) and in
-- commit order (the next appender waits until the previous one is visible). The engine appends
-- with one statement in autocommit mode that bumps the counter once for all its rows and numbers
-- them itself, so the lock is held from that statement through its commit, never across a round
-- trip to the client. Any other insert (one that names no position) is numbered by the trigger.
CREATE TABLE event_log_head
(
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint NOT NULL
);
INSERT INTO event_log_head (singleton, position) VALUES (true, 0);

CREATE FUNCTION events_assign_position() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    UPDATE event_log_head SET position = position + 1 RETURNING position INTO NEW.position;
    -- Read after the lock is held, so recorded_at never decreases along the log.
    NEW.recorded_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE TRIGGER events_assign_position
    BEFORE INSERT ON events
    FOR EACH ROW WHEN (NEW.position IS NULL) EXECUTE FUNCTION events_assign_position();

-- Snapshots are a cache of aggregate state at a sequence: one row per stream, replaced forward only.
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          jsonb                                NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
