//! The partition queues one worker consumes (of its lane), a set that changes with the
//! assignment.
//!
//! Each partition has a channel of its own, so giving a partition up is closing its channel:
//! the broker requeues that partition's unacked messages (prefetched, held for a retry) in one
//! step, and only then activates the next single-active consumer, the partition's new owner.
//! A user's events therefore never go to two workers at once.

use std::collections::{BTreeMap, BTreeSet};
use std::task::Poll;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};

use super::topology::Topology;

struct Subscription {
    channel: Channel,
    consumer: Consumer,
}

/// What the next poll yields.
// Most values are deliveries, moved straight into a batch: boxing would allocate per message.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    Delivery(u16, Delivery),
    /// A consumer failed or was cancelled by the broker (queue deleted, channel closed).
    Lost(u16, Option<lapin::Error>),
}

pub struct Subscriptions {
    topology: Topology,
    lane: String,
    consumer_tag: String,
    prefetch: u16,
    subs: BTreeMap<u16, Subscription>,
    /// Where the next poll starts, so busy low partitions cannot starve the high ones.
    cursor: u16,
}

impl Subscriptions {
    /// The subscriptions to lane `lane`'s queues of `topology`.
    pub fn new(
        topology: Topology,
        lane: String,
        consumer_tag: String,
        prefetch: u16,
    ) -> Subscriptions {
        Subscriptions {
            topology,
            lane,
            consumer_tag,
            prefetch,
            subs: BTreeMap::new(),
            cursor: 0,
        }
    }

    pub fn held(&self) -> BTreeSet<u16> {
        self.subs.keys().copied().collect()
    }

    /// Starts consuming `partition` on a channel of its own (a waiting consumer until the
    /// partition's previous owner lets go).
    pub async fn subscribe(
        &mut self,
        connection: &Connection,
        partition: u16,
    ) -> Result<(), lapin::Error> {
        if self.subs.contains_key(&partition) {
            return Ok(());
        }
        let channel = connection.create_channel().await?;
        // Per consumer (global: false): at most `prefetch` unacked messages of this partition.
        channel
            .basic_qos(self.prefetch, BasicQosOptions { global: false })
            .await?;
        let consumer = channel
            .basic_consume(
                self.topology.queue(&self.lane, partition).into(),
                format!("{}-{partition}", self.consumer_tag).into(),
                // Manual acks: a message is acked only after its outcome is committed.
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.subs
            .insert(partition, Subscription { channel, consumer });
        Ok(())
    }

    /// Stops consuming `partition`; its unacked messages go back to the queue. The caller
    /// must hold none of its deliveries any more (their acks would fail).
    pub async fn release(&mut self, partition: u16) {
        if let Some(sub) = self.subs.remove(&partition) {
            drop(sub.consumer);
            if let Err(e) = sub.channel.close(200, "partition reassigned".into()).await {
                // The channel is gone either way; the broker requeues what it held.
                tracing::debug!(partition, error = %e, "closing a partition channel failed");
            }
        }
    }

    pub async fn release_all(&mut self) {
        let all: Vec<u16> = self.subs.keys().copied().collect();
        for p in all {
            self.release(p).await;
        }
    }

    /// The next delivery of any partition held; pending while none is held.
    pub async fn next(&mut self) -> Next {
        std::future::poll_fn(|cx| {
            let from = self.cursor;
            // From the partition after the last one served, wrapping round.
            for (&p, sub) in self.subs.range_mut(from..) {
                if let Some(next) = poll_one(p, sub, cx) {
                    self.cursor = p.saturating_add(1);
                    return Poll::Ready(next);
                }
            }
            for (&p, sub) in self.subs.range_mut(..from) {
                if let Some(next) = poll_one(p, sub, cx) {
                    self.cursor = p.saturating_add(1);
                    return Poll::Ready(next);
                }
            }
            Poll::Pending
        })
        .await
    }
}

fn poll_one(p: u16, sub: &mut Subscription, cx: &mut std::task::Context<'_>) -> Option<Next> {
    match sub.consumer.poll_next_unpin(cx) {
        Poll::Ready(Some(Ok(d))) => Some(Next::Delivery(p, d)),
        Poll::Ready(Some(Err(e))) => Some(Next::Lost(p, Some(e))),
        Poll::Ready(None) => Some(Next::Lost(p, None)),
        Poll::Pending => None,
    }
}
