-- Admin UI log-in throttling (issue 6), shared by every `serve` replica: failed log-ins per
-- user name (lower-cased) and, once too many came close together, until when that name is locked.
CREATE TABLE admin_login_failures (
    username      text        PRIMARY KEY,
    failures      integer     NOT NULL,
    last_failed   timestamptz NOT NULL,
    locked_until  timestamptz
);
CREATE INDEX admin_login_failures_last_failed ON admin_login_failures (last_failed);
