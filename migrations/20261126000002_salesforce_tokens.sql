-- Salesforce refresh tokens obtained at run time (rotation, or the authorize flow), one row per
-- connector system. With rotation on, the old refresh token dies when a new one is issued, so the
-- new one is written here before the access token that came with it is used.
-- `conf_refresh_token_sha256` is the hash of the configuration's refreshToken when this row was
-- written: if the configuration's value changes later (an operator pasted a new token), the
-- configuration wins over this row again.
CREATE TABLE salesforce_tokens (
    system_name               text        PRIMARY KEY,
    refresh_token             text        NOT NULL,
    instance_url              text,
    conf_refresh_token_sha256 text,
    updated_at                timestamptz NOT NULL DEFAULT now()
);
