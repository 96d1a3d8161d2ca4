-- The outbox carries references, not bodies: the worker reads the current object and diffs it
-- against the link's snapshot, so the before and after bodies were written and never read.
-- What stays: the object, its revision, the operation, and the top-level fields it changed.
ALTER TABLE outbox ADD COLUMN changed_fields text[] NOT NULL DEFAULT '{}';
ALTER TABLE outbox DROP COLUMN before, DROP COLUMN after;
