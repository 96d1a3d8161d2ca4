-- The PKCE code verifier of each pending authorization (sealed like the consumer secret).
-- Pending authorizations last 15 minutes; ones started before this column existed carry no
-- verifier, so they are dropped: the operator starts the authorization again.
DELETE FROM admin_oauth_pending;
ALTER TABLE admin_oauth_pending ADD COLUMN code_verifier text NOT NULL;
