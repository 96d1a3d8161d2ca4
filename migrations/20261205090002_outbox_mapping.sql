-- One lane of partition queues per outbound mapping. A row naming a mapping (its resync, its
-- retried sync failure, its outbound reconciliation's writes) is published to that mapping's
-- lane only; NULL (a managed write, triggerSyncCheck) reaches every lane.
ALTER TABLE outbox ADD COLUMN mapping text;
