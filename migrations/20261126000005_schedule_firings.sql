-- One row per firing of a schedule: the replica whose INSERT wins runs that firing, so every
-- firing runs exactly once however many schedulers are up (they compute the same fire times).
CREATE TABLE schedule_firings (
    schedule_id text        NOT NULL,
    fire_time   timestamptz NOT NULL,
    node        text        NOT NULL,
    fired_at    timestamptz NOT NULL DEFAULT now(),
    outcome     text,
    PRIMARY KEY (schedule_id, fire_time)
);
