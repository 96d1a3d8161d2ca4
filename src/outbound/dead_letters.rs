//! The dead-letter queue, read back. An event the broker dead-letters (its delivery limit
//! reached: many hand-overs or crashes with it in hand) would otherwise never reach Salesforce
//! and nobody would know. Every worker also consumes `<prefix>.dead-letter`: an event whose
//! user is still behind becomes a sync failure (`DEAD_LETTERED`), listed and retried like any
//! other; one whose user is already in step is dropped; a message that is not a change event
//! (the worker rejects those to this queue) is logged with its message id and dropped.
//!
//! Every lane dead-letters into this one queue, and any worker may read a letter of any lane:
//! the failure is recorded for the mapping whose queue the event died in (the broker's
//! `x-first-death-queue` header), judged behind by that mapping's links. A letter that names
//! no lane (published by hand) counts as the reading worker's own.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use tokio::sync::watch;

use super::broker::{BrokerConnection, BrokerError, BrokerSettings, reconnect_backoff};
use super::message::ChangeEvent;
use super::message::OBJECT_TYPE;
use crate::repo::{self, Pool, RepoError, links, sync_failures};

/// The error code of a dead-lettered change in `/openidm/sync/failures`.
pub const DEAD_LETTERED: &str = "DEAD_LETTERED";

#[derive(Debug, thiserror::Error)]
enum DeadLetterError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("the dead-letter channel failed")]
    Channel(#[source] lapin::Error),
    #[error("the dead-letter consumer was cancelled")]
    Cancelled,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

pub struct DeadLetters {
    pool: Pool,
    mapping: String,
    link_type: String,
    /// The link type of each lane's mapping, as this process's sync.json knows them.
    lanes: HashMap<String, String>,
    broker: BrokerSettings,
}

/// What became of one dead-lettered message.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Recorded as a sync failure of this user.
    Failure(String),
    /// The user is in step (a later event synced it) or gone with no link: nothing to do.
    InStep,
    /// Not a change event of ours.
    Unreadable,
}

impl DeadLetters {
    pub fn new(pool: Pool, mapping: &str, link_type: &str, broker: BrokerSettings) -> DeadLetters {
        DeadLetters {
            pool,
            mapping: mapping.to_owned(),
            link_type: link_type.to_owned(),
            lanes: HashMap::new(),
            broker,
        }
    }

    /// Knows `lanes` (mapping, link type): the letters of other lanes are recorded as theirs.
    pub fn with_lanes(mut self, lanes: impl IntoIterator<Item = (String, String)>) -> DeadLetters {
        self.lanes.extend(lanes);
        self
    }

    /// Consumes the dead-letter queue until `stop`, reconnecting after a failure.
    pub async fn run_until(&self, mut stop: watch::Receiver<bool>) {
        let mut backoff = reconnect_backoff();
        loop {
            let delay = match self.session(&mut stop).await {
                Ok(()) => return,
                Err(e) => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), retry_in = ?delay, "dead-letter consumer interrupted");
                    delay
                }
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn session(&self, stop: &mut watch::Receiver<bool>) -> Result<(), DeadLetterError> {
        let broker = BrokerConnection::open(&self.broker).await?;
        let channel = &broker.channel;
        channel
            .basic_qos(20, BasicQosOptions { global: false })
            .await
            .map_err(DeadLetterError::Channel)?;
        let mut consumer = channel
            .basic_consume(
                self.broker.topology.dead_letter_queue().into(),
                "dead-letters".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(DeadLetterError::Channel)?;
        let result = loop {
            let delivery = tokio::select! {
                _ = stop.wait_for(|s| *s) => break Ok(()),
                next = consumer.next() => match next {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => break Err(DeadLetterError::Channel(e)),
                    None => break Err(DeadLetterError::Cancelled),
                },
            };
            // Acked only once its outcome is recorded: a failure here redelivers it.
            if let Err(e) = self.handle(&delivery).await {
                break Err(e.into());
            }
            if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                break Err(DeadLetterError::Channel(e));
            }
        };
        broker.close().await;
        result
    }

    async fn handle(&self, delivery: &Delivery) -> Result<Handled, RepoError> {
        let headers = delivery.properties.headers().as_ref();
        let header = |name: &str| {
            headers
                .and_then(|h| h.inner().get(name))
                .and_then(|v| match v {
                    AMQPValue::LongString(s) => Some(s.to_string()),
                    _ => None,
                })
        };
        let reason = header("x-first-death-reason");
        let queue = header("x-first-death-queue");
        let lane = queue
            .as_deref()
            .and_then(|q| self.broker.topology.lane_of_queue(q));
        let handled = self
            .record_of(lane, &delivery.data, reason.as_deref())
            .await?;
        if handled == Handled::Unreadable {
            let id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string());
            tracing::error!(message_id = ?id, bytes = delivery.data.len(), "dropped a dead-lettered message that is not a change event");
        }
        Ok(handled)
    }

    /// Records a dead-lettered event (`data`, dead-lettered for `reason`) as a sync failure of
    /// this consumer's mapping when its user is still behind.
    pub async fn record(&self, data: &[u8], reason: Option<&str>) -> Result<Handled, RepoError> {
        self.record_of(None, data, reason).await
    }

    /// As [`DeadLetters::record`], for an event that died in lane `lane`'s queue (`None`:
    /// this consumer's own).
    pub async fn record_of(
        &self,
        lane: Option<&str>,
        data: &[u8],
        reason: Option<&str>,
    ) -> Result<Handled, RepoError> {
        let (mapping, link_type) = match lane {
            None => (self.mapping.as_str(), self.link_type.as_str()),
            Some(lane) if lane == self.mapping => (self.mapping.as_str(), self.link_type.as_str()),
            Some(lane) => match self.lanes.get(lane) {
                Some(link_type) => (lane, link_type.as_str()),
                None => {
                    // A lane this process's sync.json lacks: its links are unknown, so the
                    // user is judged behind (a failure to retry rather than a silent drop).
                    tracing::warn!(lane, "a dead letter of a mapping this worker does not know");
                    (lane, lane)
                }
            },
        };
        let Ok(event) = serde_json::from_slice::<ChangeEvent>(data) else {
            return Ok(Handled::Unreadable);
        };
        if event.object_type != OBJECT_TYPE {
            return Ok(Handled::InStep);
        }
        // The user's current revision and what its link last synced, if either exists.
        let links::SyncState {
            rev,
            synced_rev: synced,
            first_id: target,
        } = links::sync_state(&self.pool, OBJECT_TYPE, &event.object_id, link_type).await?;
        let behind = match (rev, synced) {
            (Some(rev), Some(synced)) => synced < rev,
            (Some(_), None) => true,
            // Deleted: a link left means the deprovisioning never happened.
            (None, _) => target.is_some(),
        };
        if !behind {
            return Ok(Handled::InStep);
        }
        let message = format!(
            "the change event of revision {} was dead-lettered by the message broker ({}) before a worker applied it; retry sends the user's current state",
            event.rev,
            reason.unwrap_or("reason not given"),
        );
        let failure = sync_failures::NewFailure {
            mapping,
            object_type: OBJECT_TYPE,
            object_id: &event.object_id,
            object_rev: rev.unwrap_or(event.rev),
            target_id: target.as_deref(),
            situation: "UNASSESSED",
            action: "NONE",
            error_code: Some(DEAD_LETTERED),
            message: &message,
            attempts: 0,
        };
        let mut tx = repo::begin(&self.pool).await?;
        sync_failures::record(&mut tx, &[failure]).await?;
        repo::commit(tx).await?;
        tracing::warn!(user = %event.object_id, rev = event.rev, mapping, reason, "dead-lettered change recorded as a sync failure");
        Ok(Handled::Failure(event.object_id))
    }
}
