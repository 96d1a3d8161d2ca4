-- liveSync (incremental inbound sync): per source (`system/salesforce/User`), the
-- `latestDateCovered` of Salesforce's getUpdated up to which every change has been
-- reconciled. Advanced only after the changes it covers were processed, so a failed pass is
-- retried by the next one. `rev` answers IDM's `_rev` and moves with every change of `token`.
CREATE TABLE live_sync_tokens (
    source   text        PRIMARY KEY,
    rev      bigint      NOT NULL DEFAULT 1,
    token    timestamptz NOT NULL,
    updated  timestamptz NOT NULL DEFAULT now()
);
