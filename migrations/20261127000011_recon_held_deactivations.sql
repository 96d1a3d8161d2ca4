-- The mass-change guard also holds back deactivations (an UPDATE that turns a managed user's
-- accountStatus to inactive): a held row is now a DELETE or a DEACTIVATE.
ALTER TABLE recon_pending_deletes ADD COLUMN action text NOT NULL DEFAULT 'DELETE';
