//! The broker topology for change events, declared idempotently by every role at start-up.
//!
//! A durable direct exchange routes each event by a partition key, `hash(object id) mod N`,
//! onto one of N durable quorum queues, so every event of one user lands on one queue and is
//! consumed in order by one worker at a time (single active consumer). Messages rejected more
//! often than the delivery limit go to a dead-letter exchange and queue instead of looping.
//! Names carry a prefix, so tests and several deployments can share one broker.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

/// How many times a message may be redelivered before it is dead-lettered.
pub const DELIVERY_LIMIT: i64 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
    pub partitions: u16,
}

impl Topology {
    pub fn new(prefix: impl Into<String>, partitions: u16) -> Self {
        Self {
            prefix: prefix.into(),
            partitions: partitions.max(1),
        }
    }

    pub fn exchange(&self) -> String {
        format!("{}.changes", self.prefix)
    }

    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    pub fn queue(&self, partition: u16) -> String {
        format!("{}.changes.{partition:02}", self.prefix)
    }

    /// The partition of an object: stable across processes and releases (FNV-1a, not
    /// std's randomly keyed hasher), so every replica routes a user to the same queue.
    pub fn partition_for(&self, object_id: &str) -> u16 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in object_id.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash % u64::from(self.partitions)) as u16
    }

    pub fn routing_key(&self, object_id: &str) -> String {
        self.partition_for(object_id).to_string()
    }

    /// Declares the exchanges, queues and bindings; safe to repeat with the same settings.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                self.dead_letter_queue().into(),
                QueueDeclareOptions::durable(),
                quorum_arguments(&[]),
            )
            .await?;
        channel
            .queue_bind(
                self.dead_letter_queue().into(),
                self.dead_letter_exchange().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        for partition in 0..self.partitions {
            let arguments = quorum_arguments(&[
                // One consumer at a time per partition: a user's events stay in order.
                ("x-single-active-consumer", AMQPValue::Boolean(true)),
                // Poison messages leave after DELIVERY_LIMIT redeliveries, to the dead-letter queue.
                ("x-delivery-limit", AMQPValue::LongLongInt(DELIVERY_LIMIT)),
                (
                    "x-dead-letter-exchange",
                    AMQPValue::LongString(self.dead_letter_exchange().into()),
                ),
            ]);
            channel
                .queue_declare(
                    self.queue(partition).into(),
                    QueueDeclareOptions::durable(),
                    arguments,
                )
                .await?;
            channel
                .queue_bind(
                    self.queue(partition).into(),
                    self.exchange().into(),
                    partition.to_string().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Quorum queues: replicated and durable, and the queue type that enforces a delivery limit.
fn quorum_arguments(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString("quorum".into()),
    );
    for (key, value) in extra {
        table.insert(ShortString::from(*key), value.clone());
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        let t = Topology::new("t", 16);
        assert_eq!(t.partition_for("bjensen"), t.partition_for("bjensen"));
        // Fixed values: a change here would re-route users across a rolling upgrade.
        assert_eq!(t.partition_for(""), (0xcbf2_9ce4_8422_2325u64 % 16) as u16);
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[t.partition_for(&format!("user-{i}")) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (700..1300).contains(c)), "{counts:?}");
        assert_eq!(t.queue(3), "t.changes.03");
        assert_eq!(Topology::new("t", 0).partitions, 1);
    }
}
