-- A row the broker returned as unroutable (no queue bound for its routing key) waits until
-- then before the relay claims it again, so it neither spins the relay nor holds back others.
ALTER TABLE outbox ADD COLUMN retry_at timestamptz;
