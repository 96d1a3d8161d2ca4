-- Recon's fast path for an unchanged org: the digest of the Salesforce record (and of the
-- mapping) that recon last saw in step with the link's snapshot. A later run that reads the
-- same record while the managed object is still at the snapshot's revision knows, without
-- loading either body, that nothing changed. NULL when the snapshot was written otherwise
-- (the outbound worker, a held deactivation): then the full comparison runs.
ALTER TABLE links ADD COLUMN source_digest bytea;
