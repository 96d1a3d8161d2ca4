-- Implicit sync (the outbound worker): failures an operator can see and retry, and the
-- per-object sync audit.

-- A change the worker could not apply (permanent Salesforce error, or transient errors past
-- the retry bound): one row per mapping and object, updated on every further failed attempt
-- and deleted when a later sync of the object succeeds. `id` is stable across attempts so an
-- operator can retry it by id.
CREATE TABLE sync_failures (
    id            text        PRIMARY KEY,
    rev           bigint      NOT NULL DEFAULT 0,
    mapping       text        NOT NULL,
    object_type   text        NOT NULL,
    object_id     text        NOT NULL,
    object_rev    bigint      NOT NULL,
    target_id     text,
    situation     text        NOT NULL,
    action        text        NOT NULL,
    error_code    text,
    message       text        NOT NULL,
    attempts      integer     NOT NULL,
    first_failed  timestamptz NOT NULL DEFAULT now(),
    last_failed   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sync_failures_object UNIQUE (mapping, object_type, object_id)
);

-- Per-object implicit-sync audit (`audit/sync`): the (id, rev, body) shape of
-- `managed_objects`, so `_queryFilter`s compile with the same filter compiler.
CREATE TABLE sync_audit (
    id         text        PRIMARY KEY,
    rev        bigint      NOT NULL DEFAULT 0,
    body       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_audit_created ON sync_audit (created_at);

-- 'sync': a re-enqueue (triggerSyncCheck, a retried failure). It carries no change of its
-- own; the worker pushes the object's current state in full.
ALTER TABLE outbox DROP CONSTRAINT outbox_operation_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_operation_check
    CHECK (operation IN ('create', 'update', 'delete', 'sync'));
