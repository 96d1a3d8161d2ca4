-- Salesforce users an outbound run's first pass found linked to nothing, kept for its target
-- phase once more of them than the run holds in memory. Unlogged, like recon_seen: it only
-- matters while its run lives (a crash fails the run anyway).
CREATE UNLOGGED TABLE recon_unlinked (
    recon_id  text NOT NULL,
    target_id text NOT NULL,
    -- validTarget's answer, or NULL with the script's error.
    qualifies boolean,
    error     text,
    PRIMARY KEY (recon_id, target_id)
);
