-- The event log. Column names and the primary key follow postgres-es, whose repository appends
-- and loads streams; position, event_id and recorded_at are ours (see docs/architecture.md).
CREATE TABLE events
(
    aggregate_type text                          NOT NULL,
    aggregate_id   text                          NOT NULL,
    sequence       bigint CHECK (sequence >= 0)  NOT NULL,
    event_type     text                          NOT NULL,
    event_version  text                          NOT NULL,
    payload        jsonb                         NOT NULL,
    metadata       jsonb                         NOT NULL,
    -- Set when the appending transaction commits (below): never NULL once the row is visible.
    position       bigint,
    event_id       uuid                          NOT NULL DEFAULT gen_random_uuid(),
    recorded_at    timestamptz                   NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX events_position ON events (position);
CREATE UNIQUE INDEX events_event_id ON events (event_id);

-- One row holding the last position handed out. Appenders bump it under its row lock, which they
-- keep until they commit: positions are therefore gap-free (a rolled-back bump is undone) and in
-- commit order (the next appender waits until the previous one is visible). The bump runs in a
-- deferred trigger, i.e. as the transaction commits, so the lock is held only for the commit
-- itself and never across a round trip to the client.
CREATE TABLE event_log_head
(
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint NOT NULL
);
INSERT INTO event_log_head (singleton, position) VALUES (true, 0);

CREATE FUNCTION events_assign_position() RETURNS trigger
    LANGUAGE plpgsql AS
$$
DECLARE
    next_position bigint;
BEGIN
    UPDATE event_log_head SET position = position + 1 RETURNING position INTO next_position;
    -- recorded_at is read after the lock is taken, so it never decreases along the log.
    UPDATE events
       SET position = next_position, recorded_at = clock_timestamp()
     WHERE aggregate_type = NEW.aggregate_type
       AND aggregate_id = NEW.aggregate_id
       AND sequence = NEW.sequence;
    RETURN NULL;
END
$$;

-- Deferred triggers fire at COMMIT, in insertion order: a transaction's events get consecutive
-- positions in their stream order.
CREATE CONSTRAINT TRIGGER events_assign_position
    AFTER INSERT ON events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION events_assign_position();

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
