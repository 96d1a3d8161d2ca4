-- Worker membership per lane (the outbound mapping a worker applies): the workers of one
-- mapping divide that mapping's partition queues among themselves only. '' for the rows of
-- workers older than lanes.
ALTER TABLE outbound_workers ADD COLUMN lane text NOT NULL DEFAULT '';
