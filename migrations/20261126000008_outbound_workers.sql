-- Outbound worker membership: each running worker heartbeats its row; the live rows (a
-- heartbeat within the lease TTL, by the database's clock) divide the partition queues among
-- themselves. `partitions` is what the worker consumes now, for operators and the Admin UI.
CREATE TABLE outbound_workers (
    worker_id     text        PRIMARY KEY,
    host          text        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL,
    partitions    int[]       NOT NULL DEFAULT '{}'
);
