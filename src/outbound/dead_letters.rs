//! The dead-letter queue, read back. An event the broker dead-letters (its delivery limit
//! reached: many hand-overs or crashes with it in hand) would otherwise never reach Salesforce
//! and nobody would know. Every worker also consumes `<prefix>.dead-letter`: an event whose
//! user is still behind becomes a sync failure (`DEAD_LETTERED`), listed and retried like any
//! other; one whose user is already in step is dropped; a message that is not a change event
//! (the worker rejects those to this queue) is logged with its message id and dropped.

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
            broker,
        }
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
        let reason = headers
            .and_then(|h| h.inner().get("x-first-death-reason"))
            .and_then(|v| match v {
                AMQPValue::LongString(s) => Some(s.to_string()),
                _ => None,
            });
        let handled = self.record(&delivery.data, reason.as_deref()).await?;
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

    /// Records a dead-lettered event (`data`, dead-lettered for `reason`) as a sync failure
    /// when its user is still behind.
    pub async fn record(&self, data: &[u8], reason: Option<&str>) -> Result<Handled, RepoError> {
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
        } = links::sync_state(&self.pool, OBJECT_TYPE, &event.object_id, &self.link_type).await?;
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
            mapping: &self.mapping,
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
        tracing::warn!(user = %event.object_id, rev = event.rev, reason, "dead-lettered change recorded as a sync failure");
        Ok(Handled::Failure(event.object_id))
    }
}
