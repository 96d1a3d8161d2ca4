-- The access token every process of a connector shares (issue 13, refresh single-flight across
-- processes). Whoever refreshes does so under the connector's refresh lock (a transaction
-- advisory lock keyed by the system name) and writes the new access token here in that same
-- transaction, so a process whose token expired takes the lock, finds a newer one here, and
-- uses it without a token call. With refresh-token rotation on, a second refresh would
-- present a refresh token the first one had just rotated out (invalid_grant).
-- `access_token` is sealed under the deployment's secrets key, like the refresh token.
-- `refresh_token_sha256` is the hash of the refresh token current when the row was written: a
-- process holding another one (an operator configured a new token) refreshes instead of
-- adopting a session of the older authorization.
CREATE TABLE salesforce_sessions (
    system_name          text        PRIMARY KEY,
    access_token         text        NOT NULL,
    instance_url         text        NOT NULL,
    refresh_token_sha256 text        NOT NULL,
    -- Counts the sessions stored for the system: 1 for the first, +1 at each refresh.
    generation           bigint      NOT NULL,
    -- Salesforce's issued_at, or when the row was written if the answer had none.
    issued_at            timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
