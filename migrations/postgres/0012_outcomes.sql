-- Recent outcomes the log does not record (a rejected, ignored, filtered, rate-limited or refused
-- delivery, a duplicate), kept for GET /triggers/{id}/explain: bounded per trigger by count and
-- by age, written off the request's path. Times are epoch milliseconds.
CREATE TABLE trigger_outcomes
(
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_trigger_id text   NOT NULL,
    at                 bigint NOT NULL,
    source             text   NOT NULL,
    outcome            text   NOT NULL,
    reason             text,
    run_id             text
);
CREATE INDEX trigger_outcomes_trigger ON trigger_outcomes (project_trigger_id, at, id);
CREATE INDEX trigger_outcomes_at ON trigger_outcomes (at);

-- What was not kept: outcomes past a trigger's cap (or dropped while the writer was behind).
CREATE TABLE trigger_outcome_overflow
(
    project_trigger_id text PRIMARY KEY,
    not_kept           bigint NOT NULL,
    since              bigint NOT NULL,
    last_at            bigint NOT NULL
);
