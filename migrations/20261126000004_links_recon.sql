-- Links between a mapping's source and target objects (IDM's `repo/link` object set).
-- `first_id` is the defining mapping's source id, `second_id` its target id; a mapping that
-- reuses the links (`"links": …`) reads them reversed. One link per object and side, per type
-- and qualifier.
--
-- `synced_snapshot`/`synced_rev`: the managed object (body and revision) last known to be in
-- step with the other side (DESIGN.md invariant 4). Recon writes it in the transaction of the
-- managed change it copies in; the outbound worker after a successful Salesforce write. The
-- worker sends only what differs between this snapshot and the current managed object, so a
-- recon's own change is never echoed back. NULL: not known to be in step (send everything).
CREATE TABLE links (
    id              text        PRIMARY KEY,
    rev             bigint      NOT NULL DEFAULT 0,
    link_type       text        NOT NULL,
    link_qualifier  text        NOT NULL DEFAULT 'default',
    first_id        text        NOT NULL,
    second_id       text        NOT NULL,
    synced_snapshot jsonb,
    synced_rev      bigint,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT links_first UNIQUE (link_type, link_qualifier, first_id),
    CONSTRAINT links_second UNIQUE (link_type, link_qualifier, second_id)
);

-- Reconciliation runs: they survive restarts. `summary` holds the counters in IDM's summary
-- shape; state and stage live in columns so a dead run can be found and marked FAILED.
-- `heartbeat` is refreshed while the run makes progress (operators see a stuck run); the
-- authoritative liveness test is the run's advisory lock (see src/recon/run.rs).
CREATE TABLE recon_runs (
    id                text        PRIMARY KEY,
    seq               bigserial   NOT NULL,
    mapping           text        NOT NULL,
    state             text        NOT NULL CHECK (state IN ('ACTIVE', 'CANCELED', 'FAILED', 'SUCCESS')),
    stage             text        NOT NULL,
    stage_description text        NOT NULL,
    summary           jsonb       NOT NULL,
    parameters        jsonb       NOT NULL,
    started           timestamptz NOT NULL DEFAULT now(),
    ended             timestamptz,
    heartbeat         timestamptz NOT NULL DEFAULT now(),
    cancel_requested  boolean     NOT NULL DEFAULT false
);
CREATE INDEX recon_runs_active ON recon_runs (mapping) WHERE state = 'ACTIVE';

-- Per-object recon audit (`audit/recon`): the (id, rev, body) shape of `managed_objects`, so
-- `_queryFilter`s compile with the same filter compiler.
CREATE TABLE recon_audit (
    id         text        PRIMARY KEY,
    rev        bigint      NOT NULL DEFAULT 0,
    recon_id   text        NOT NULL,
    body       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recon_audit_recon ON recon_audit (recon_id);

-- Targets a run's source phase touched, so its target phase visits only the others without
-- holding every id in memory. Unlogged: it only matters while its run lives (a crash fails the
-- run anyway), and it is cheap to write.
CREATE UNLOGGED TABLE recon_seen (
    recon_id  text NOT NULL,
    target_id text NOT NULL,
    PRIMARY KEY (recon_id, target_id)
);

-- Deletes a run has decided, applied only at its end, after the mass-change guard has counted
-- them (see src/recon/guard.rs). Unlogged for the same reason as recon_seen.
CREATE UNLOGGED TABLE recon_pending_deletes (
    recon_id  text   NOT NULL,
    seq       bigint NOT NULL,
    target_id text   NOT NULL,
    source_id text,
    situation text   NOT NULL,
    PRIMARY KEY (recon_id, seq)
);
