-- Admin UI (issue 6): log-in sessions shared by every `serve` replica, the pending OAuth
-- authorizations they start, and the Salesforce connector settings saved from the UI.

-- One row per logged-in browser. `id` is the SHA-256 (hex) of the cookie's token, so a read of
-- this table does not yield usable cookies; `csrf_token` is put in every form of the session.
CREATE TABLE admin_sessions (
    id          text        PRIMARY KEY,
    username    text        NOT NULL,
    csrf_token  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_sessions_last_seen ON admin_sessions (last_seen);

-- An OAuth web-server flow started from the Connectors page: the `state` sent to Salesforce,
-- the session that started it, and the settings to keep once the code exchange succeeds.
CREATE TABLE admin_oauth_pending (
    state          text        PRIMARY KEY,
    session_id     text        NOT NULL REFERENCES admin_sessions (id) ON DELETE CASCADE,
    system_name    text        NOT NULL,
    login_url      text        NOT NULL,
    client_id      text        NOT NULL,
    client_secret  text        NOT NULL,
    redirect_uri   text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Connector settings saved from the UI; they override the provisioner file's loginUrl,
-- clientId and clientSecret in every role (read at each token call).
CREATE TABLE salesforce_connector_settings (
    system_name    text        PRIMARY KEY,
    login_url      text        NOT NULL,
    client_id      text        NOT NULL,
    client_secret  text        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
