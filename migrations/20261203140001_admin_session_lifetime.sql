-- Admin sessions (issue 13): an absolute lifetime besides the idle one (counted from
-- created_at), and the fingerprint of the admin credential each session was created under (a
-- keyed HMAC of the configured user name and password value, never the password): a session
-- whose fingerprint is not the running configuration's is dead, so changing the admin password
-- ends every session. Sessions from before carry none and end at the upgrade.
ALTER TABLE admin_sessions ADD COLUMN credential text NOT NULL DEFAULT '';
ALTER TABLE admin_sessions ALTER COLUMN credential DROP DEFAULT;
CREATE INDEX admin_sessions_created_at ON admin_sessions (created_at);

-- The Admin UI's lockout per user name (which refused the right password too) gave way to the
-- in-memory throttle per address that the REST API shares.
DROP TABLE admin_login_failures;
