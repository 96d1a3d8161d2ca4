-- Wake the outbox relay as soon as a change commits (NOTIFY is delivered at commit, once per
-- transaction and channel); the relay still polls, in case a notification is missed.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idm_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- The purge of published rows reads them by age.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
