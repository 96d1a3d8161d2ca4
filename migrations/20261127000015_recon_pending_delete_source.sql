-- A held DELETE keeps its source object when the mapping has an onDelete script, which runs
-- (with `source` and `target`) only when the guard lets the delete through.
ALTER TABLE recon_pending_deletes ADD COLUMN source jsonb;
