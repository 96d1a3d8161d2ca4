-- The audit retention purge reads recon audit rows by age (sync_audit has its index already).
CREATE INDEX recon_audit_created ON recon_audit (created_at);
