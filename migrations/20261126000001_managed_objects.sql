-- Managed objects (IDM's generic repository table): one row per object, properties in `body`.
-- `rev` comes from one global sequence, so a revision is never reused, not even for a re-created id,
-- and a later write always has a larger revision (the worker relies on that for last-write-wins).
CREATE SEQUENCE managed_object_rev_seq AS bigint;

CREATE TABLE managed_objects (
    object_type text        NOT NULL,
    id          text        NOT NULL,
    rev         bigint      NOT NULL,
    body        jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (object_type, id),
    CHECK (jsonb_typeof(body) = 'object')
);

-- Queries by userName or mail must not scan the table; userName is unique per object type.
CREATE UNIQUE INDEX managed_objects_user_name ON managed_objects (object_type, (body->>'userName'));
CREATE INDEX managed_objects_mail ON managed_objects (object_type, (body->>'mail'));

-- Transactional outbox: one row per real change, written in the transaction of the change.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    object_type  text        NOT NULL,
    object_id    text        NOT NULL,
    rev          bigint      NOT NULL,
    operation    text        NOT NULL CHECK (operation IN ('create', 'update', 'delete')),
    before       jsonb,
    after        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

-- The relay's claim query reads only unpublished rows, in id order.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
