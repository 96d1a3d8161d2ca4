-- The recon run a firing started, written in the transaction that claims the firing and records
-- the run: a claimed firing with a run_id has a run row; a crash before that commit leaves no
-- claim at all, so the firing is still there for the next scheduler to fire.
ALTER TABLE schedule_firings ADD COLUMN run_id text;
