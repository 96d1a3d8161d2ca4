-- The connector's enabled state set from the Admin UI (issue 6): Save and authorize enables it,
-- Disable/Enable toggle it. When a row exists it overrides the provisioner file's "enabled" in
-- every role; without one the file decides.
CREATE TABLE salesforce_connector_enabled (
    system_name  text        PRIMARY KEY,
    enabled      boolean     NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
