-- Change event subscriptions (Pub/Sub API), one row per connector: the lease that keeps one
-- subscriber active across replicas, the replay id of the last event applied, and the status
-- the Admin UI shows.
CREATE TABLE event_subscriptions (
    connector        text PRIMARY KEY,
    topic            text NOT NULL,
    holder           text,
    lease_expires_at timestamptz,
    replay_id        bytea,
    -- Salesforce's commit time of the last event applied, and when it was applied.
    last_commit_at   timestamptz,
    last_applied_at  timestamptz,
    state            text NOT NULL DEFAULT 'STARTING',
    message          text NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL DEFAULT now()
);
