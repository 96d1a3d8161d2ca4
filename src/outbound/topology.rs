//! The broker topology for change events, declared idempotently by every role at start-up.
//!
//! One **lane** per outbound mapping (a mapping from `managed/user` to `system/<name>/...` in
//! sync.json, the lane named after it): a full set of N durable quorum queues,
//! `{prefix}.changes.{lane}.{NN}`, so a paused or failing org's backlog waits in its own
//! queues and never holds back another org's changes. A durable direct exchange routes each
//! event by a partition key, `hash(object id) mod N`: every lane's queue of partition p is
//! bound with the broadcast key `p` (a managed change, which every mapping applies) and with
//! its lane's own key `{lane}:p` (a change meant for one mapping: its resync, its retried
//! failure, its outbound reconciliation's writes). Every event of one user lands on one queue
//! of each lane and is consumed in order by one worker at a time (single active consumer).
//! Messages rejected more often than the delivery limit go to the dead-letter exchange and
//! queue (one for all lanes) instead of looping. Names carry a prefix, so tests and several
//! deployments can share one broker.
//!
//! Every role declares every lane it knows from sync.json ([`lanes_of`]): the exchange confirms
//! a message routed to at least one queue, so a broadcast published while only some lanes'
//! queues existed would never reach the others. Queues are per mapping: the queues of a
//! mapping removed from sync.json are left as they are (with whatever they hold) and must be
//! deleted by the operator, as must the lane-less `{prefix}.changes.{NN}` queues of releases
//! before lanes.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

use std::path::Path;

use super::message::OBJECT_RESOURCE;
use crate::config::ConfigError;
use crate::mapping::SyncConfig;

/// How many times a message may be redelivered before it is dead-lettered.
pub const DELIVERY_LIMIT: i64 = 20;

/// The lanes of `sync`: the names of its outbound mappings (from [`OBJECT_RESOURCE`] to a
/// `system/` target), in sync.json order. Every role derives its lanes with this one rule.
pub fn lanes_of(sync: &SyncConfig) -> Vec<String> {
    sync.mappings
        .iter()
        .filter(|m| m.source == OBJECT_RESOURCE && m.target.starts_with("system/"))
        .map(|m| m.name.clone())
        .collect()
}

/// The lanes of `conf_dir`'s sync.json ([`lanes_of`]); none without a sync.json (nothing is
/// synced outbound: every change then waits in the outbox, unroutable).
pub fn lanes_in(conf_dir: &Path) -> Result<Vec<String>, ConfigError> {
    if !conf_dir.join("sync.json").exists() {
        return Ok(Vec::new());
    }
    Ok(lanes_of(&SyncConfig::load(conf_dir)?))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
    pub partitions: u16,
    /// The outbound mappings whose queues are declared, each once.
    pub lanes: Vec<String>,
}

impl Topology {
    pub fn new(prefix: impl Into<String>, partitions: u16) -> Self {
        Self {
            prefix: prefix.into(),
            partitions: partitions.max(1),
            lanes: Vec::new(),
        }
    }

    /// Adds `lanes` (those already there are kept once, in their first place).
    pub fn with_lanes(mut self, lanes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        for lane in lanes {
            let lane = lane.into();
            if !self.lanes.contains(&lane) {
                self.lanes.push(lane);
            }
        }
        self
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

    /// Lane `lane`'s queue of `partition`.
    pub fn queue(&self, lane: &str, partition: u16) -> String {
        format!("{}.changes.{lane}.{partition:02}", self.prefix)
    }

    /// Every lane's queues, lane by lane.
    pub fn queues(&self) -> Vec<String> {
        self.lanes
            .iter()
            .flat_map(|lane| (0..self.partitions).map(move |p| self.queue(lane, p)))
            .collect()
    }

    /// The lane of one of this topology's partition queues (by its name alone: also a lane
    /// this process does not declare); `None` for any other name.
    pub fn lane_of_queue<'q>(&self, queue: &'q str) -> Option<&'q str> {
        let rest = queue
            .strip_prefix(&self.prefix)?
            .strip_prefix(".changes.")?;
        let (lane, partition) = rest.rsplit_once('.')?;
        let numbered = !partition.is_empty() && partition.bytes().all(|b| b.is_ascii_digit());
        (numbered && !lane.is_empty()).then_some(lane)
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

    /// The broadcast key of an object's changes: its partition's queue in every lane.
    pub fn routing_key(&self, object_id: &str) -> String {
        self.partition_for(object_id).to_string()
    }

    /// The key of an object's change meant for lane `lane` only.
    pub fn lane_routing_key(&self, lane: &str, object_id: &str) -> String {
        lane_key(lane, self.partition_for(object_id))
    }

    /// Declares the exchanges, every lane's queues and their bindings; safe to repeat with the
    /// same settings.
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
        for lane in &self.lanes {
            for partition in 0..self.partitions {
                self.declare_queue(channel, lane, partition).await?;
            }
        }
        Ok(())
    }

    /// Declares lane `lane`'s queue of `partition`, bound with the broadcast key and with the
    /// lane's own.
    async fn declare_queue(
        &self,
        channel: &Channel,
        lane: &str,
        partition: u16,
    ) -> Result<(), lapin::Error> {
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
        let queue = self.queue(lane, partition);
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                arguments,
            )
            .await?;
        for key in [partition.to_string(), lane_key(lane, partition)] {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.exchange().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

/// The routing key of lane `lane`'s queue of `partition` alone.
fn lane_key(lane: &str, partition: u16) -> String {
    format!("{lane}:{partition}")
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
        assert_eq!(Topology::new("t", 0).partitions, 1);
    }

    #[test]
    fn each_lane_has_its_queues_and_keys() {
        let t = Topology::new("t", 4)
            .with_lanes(["a", "b.org"])
            .with_lanes(["a"]);
        assert_eq!(t.lanes, ["a", "b.org"], "a lane added twice is kept once");
        assert_eq!(t.queue("b.org", 3), "t.changes.b.org.03");
        assert_eq!(t.queues().len(), 8);
        assert_eq!(
            t.queues().first().map(String::as_str),
            Some("t.changes.a.00")
        );
        let p = t.partition_for("bjensen");
        assert_eq!(t.routing_key("bjensen"), p.to_string());
        assert_eq!(t.lane_routing_key("b.org", "bjensen"), format!("b.org:{p}"));
        assert_eq!(t.lane_of_queue("t.changes.b.org.03"), Some("b.org"));
        assert_eq!(t.lane_of_queue("t.changes.gone.12"), Some("gone"));
        for other in [
            "t.dead-letter",
            "u.changes.a.01",
            "t.changes.01",
            "t.changes.a.x",
        ] {
            assert_eq!(t.lane_of_queue(other), None, "{other}");
        }
        assert!(
            Topology::new("t", 4).queues().is_empty(),
            "no lane, no queue"
        );
    }

    #[test]
    fn the_lanes_are_the_outbound_mappings() {
        let mapping = |name: &str, source: &str, target: &str| serde_json::json!({"name": name, "source": source, "target": target});
        let sync = SyncConfig::from_json(&serde_json::json!({"mappings": [
            mapping("inbound", "system/salesforce/User", "managed/user"),
            mapping("toSalesforce", "managed/user", "system/salesforce/User"),
            mapping("toOther", "managed/user", "system/other/User"),
            mapping("roles", "managed/role", "system/salesforce/Group"),
            mapping("copy", "managed/user", "managed/archive"),
        ]}))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(lanes_of(&sync), ["toSalesforce", "toOther"]);
    }
}
