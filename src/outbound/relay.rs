//! The outbox relay: claims unpublished outbox rows in batches (`FOR UPDATE SKIP LOCKED`, so
//! relays cooperate), publishes each as a persistent, mandatory message with publisher
//! confirms, and marks a row published only after the broker confirmed it and did not return
//! it. Anything else stays unpublished and is retried: a change may be published twice (the
//! worker ignores duplicates) but is never lost. LISTEN/NOTIFY wakes the relay at once; a
//! short poll covers lost notifications and a restarted Postgres.
//!
//! A row is published to every lane (the broadcast key of its partition) unless it names an
//! outbound mapping, then to that mapping's lane only (`super::topology`). A row the broker
//! returns as unroutable (no queue bound for its key: a lane nobody declared, a queue
//! deleted) does not end the session, which would stall every lane: it is deferred in the
//! outbox (`outbox::defer`, tried again after 1 s, then less and less often, at most every
//! 5 min), and the relay declares its topology again (at most every
//! [`REDECLARE_INTERVAL`]) in case a queue of its own was deleted.
//!
//! The wait for the broker is bounded ([`RelaySettings::confirm_timeout`]): the claimed rows
//! stay locked while it lasts, so a broker that stops answering must not hold them forever.
//! At the bound the batch rolls back (its rows unpublished, for any relay to take) and the
//! relay reconnects; a message the broker took after all is a harmless duplicate.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation};

use super::broker::{
    BrokerConnection, BrokerError, BrokerSettings, BrokerStatus, reconnect_backoff,
};
use super::message::{ChangeEvent, SCHEMA_VERSION};
use crate::metrics::Metrics;
use crate::repo::outbox::{self, OutboxRow};
use crate::repo::{self, Pool, RepoError};

/// The channel the outbox trigger notifies (see the migrations).
pub const NOTIFY_CHANNEL: &str = "idm_outbox";

#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub broker: BrokerSettings,
    /// Rows claimed and published per transaction.
    pub batch_size: i64,
    /// The fallback poll when no notification arrives.
    pub poll_interval: Duration,
    /// Published rows older than this are deleted.
    pub retention: Duration,
    /// How long a batch may wait for the broker (its publishes and their confirms, and a
    /// connection's set-up) before it is rolled back and the connection dropped.
    pub confirm_timeout: Duration,
}

/// The default of [`RelaySettings::confirm_timeout`]: a healthy broker confirms a batch in
/// milliseconds; one under a memory or disk alarm blocks publishers until it clears.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// The shortest time between two declarations of the topology prompted by unroutable rows.
pub const REDECLARE_INTERVAL: Duration = Duration::from_secs(5);

/// A session shorter than this failed fast: the reconnection delay keeps growing.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("the outbox could not be read or updated")]
    Repo(#[from] RepoError),
    #[error("publishing failed")]
    Publish(#[source] lapin::Error),
    #[error("the broker did not accept {0} change event(s); they stay in the outbox")]
    Refused(usize),
    #[error("cannot declare the broker topology again")]
    Redeclare(#[source] lapin::Error),
    #[error("the broker connection closed")]
    Disconnected,
    #[error(
        "the broker did not confirm {rows} change event(s) within {waited:?}: the batch was rolled back, its rows stay unpublished and are sent again after reconnecting"
    )]
    ConfirmTimeout { rows: usize, waited: Duration },
    #[error("the broker did not finish setting up the connection within {0:?}")]
    SetupTimeout(Duration),
    #[error("a change event could not be encoded")]
    Encode(#[source] serde_json::Error),
}

/// What became of a batch's publishes.
struct Confirmed<'r> {
    confirmed: Vec<i64>,
    /// Returned unroutable: the row and the lane it was meant for (`None`: every lane).
    returned: Vec<(i64, Option<&'r str>)>,
    retry_later: usize,
}

pub struct Relay {
    pool: Pool,
    settings: RelaySettings,
    status: BrokerStatus,
    metrics: Metrics,
}

/// What one pass over the outbox did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub published: usize,
    /// Rows the broker returned as unroutable: deferred (`outbox::defer`).
    pub unroutable: usize,
    /// Rows the broker refused or did not confirm: left for the next pass.
    pub retry_later: usize,
}

impl PassReport {
    /// The rows the pass claimed.
    pub fn claimed(&self) -> usize {
        self.published + self.unroutable + self.retry_later
    }
}

impl Relay {
    pub fn new(pool: Pool, settings: RelaySettings, status: BrokerStatus) -> Relay {
        Relay {
            pool,
            settings,
            status,
            metrics: Metrics::process(),
        }
    }

    /// Counts into `metrics` instead of the process's registry.
    pub fn with_metrics(mut self, metrics: Metrics) -> Relay {
        self.metrics = metrics;
        self
    }

    /// Runs until `shutdown` completes: reconnects to the broker (with jittered exponential
    /// backoff) and to Postgres whenever either goes away.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut backoff = reconnect_backoff();
        loop {
            let started = tokio::time::Instant::now();
            let session = tokio::select! {
                () = &mut shutdown => break,
                result = self.session() => result,
            };
            self.status.set(false);
            if started.elapsed() >= HEALTHY_SESSION {
                // A session that lasted: the next outage starts from a short delay.
                backoff = reconnect_backoff();
            }
            let delay = backoff.next().unwrap_or(Duration::from_secs(30));
            match session {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), retry_in = ?delay, "outbox relay interrupted")
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.status.stopped();
        tracing::info!("outbox relay stopped");
    }

    /// One connected stretch: publish whenever woken, until something fails.
    async fn session(&self) -> Result<(), RelayError> {
        let bound = self.settings.confirm_timeout;
        let broker = tokio::time::timeout(bound, self.connect())
            .await
            .map_err(|_| RelayError::SetupTimeout(bound))??;
        let mut listener = outbox::Listener::listen(&self.pool, NOTIFY_CHANNEL).await?;
        self.status.set(true);
        let mut last_purge = tokio::time::Instant::now() - Duration::from_secs(3600);
        let mut last_declared = tokio::time::Instant::now();
        loop {
            // Drain: batches until nothing is due or the broker refuses something.
            loop {
                let report = self.publish_batch(&broker).await?;
                if report.retry_later > 0 {
                    return Err(RelayError::Refused(report.retry_later));
                }
                if report.unroutable > 0 && last_declared.elapsed() >= REDECLARE_INTERVAL {
                    // A queue of ours may have been deleted: declared again, the deferred
                    // rows find it on their next try.
                    self.settings
                        .broker
                        .topology
                        .declare(&broker.channel)
                        .await
                        .map_err(RelayError::Redeclare)?;
                    last_declared = tokio::time::Instant::now();
                }
                // Deferred rows are not claimed again: a full batch means more may be due.
                if report.claimed() < self.settings.batch_size as usize {
                    break;
                }
            }
            if last_purge.elapsed() >= Duration::from_secs(60) {
                self.purge().await?;
                last_purge = tokio::time::Instant::now();
            }
            if !broker.is_connected() {
                return Err(RelayError::Disconnected);
            }
            // Wake on a notification or after the poll interval, whichever comes first.
            match tokio::time::timeout(self.settings.poll_interval, listener.try_recv()).await {
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// A broker connection whose channel confirms publishes.
    async fn connect(&self) -> Result<BrokerConnection, RelayError> {
        let broker = BrokerConnection::open(&self.settings.broker).await?;
        broker
            .channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(RelayError::Publish)?;
        Ok(broker)
    }

    /// Claims one batch, publishes it, and marks the confirmed rows published. A broker that
    /// does not confirm within the bound: [`RelayError::ConfirmTimeout`], the batch rolled
    /// back (the connection is then unusable: its confirms are out of step).
    pub async fn publish_batch(&self, broker: &BrokerConnection) -> Result<PassReport, RelayError> {
        let mut tx = repo::begin(&self.pool).await?;
        let rows = outbox::claim(&mut tx, self.settings.batch_size).await?;
        if rows.is_empty() {
            repo::commit(tx).await?;
            return Ok(PassReport::default());
        }
        let waited = self.settings.confirm_timeout;
        let outcome =
            match tokio::time::timeout(waited, self.publish_and_confirm(broker, &rows)).await {
                Ok(result) => result?,
                Err(_) => {
                    repo::rollback(tx).await?;
                    return Err(RelayError::ConfirmTimeout {
                        rows: rows.len(),
                        waited,
                    });
                }
            };
        outbox::mark_published(&mut tx, &outcome.confirmed).await?;
        let returned: Vec<i64> = outcome.returned.iter().map(|&(id, _)| id).collect();
        if !returned.is_empty() {
            outbox::defer(&mut tx, &returned).await?;
        }
        repo::commit(tx).await?;
        let report = PassReport {
            published: outcome.confirmed.len(),
            unroutable: returned.len(),
            retry_later: outcome.retry_later,
        };
        if report.unroutable > 0 {
            // One line a batch: a lane nobody declared returns every row meant for it.
            let lanes: BTreeSet<&str> = outcome
                .returned
                .iter()
                .map(|(_, lane)| lane.unwrap_or("every lane"))
                .collect();
            tracing::warn!(
                rows = report.unroutable,
                ?lanes,
                "change events unroutable (no queue bound for their lane and partition: is every outbound mapping's lane declared?); they wait in the outbox and are tried again later"
            );
        }
        self.metrics.published(report.published);
        tracing::debug!(
            published = report.published,
            unroutable = report.unroutable,
            retry_later = report.retry_later,
            "outbox batch"
        );
        Ok(report)
    }

    /// Publishes `rows` and waits for each confirm: the ids confirmed, those returned
    /// unroutable (with the lane they were meant for), and the count of the others (refused
    /// or failed), which stay for a later pass.
    async fn publish_and_confirm<'r>(
        &self,
        broker: &BrokerConnection,
        rows: &'r [OutboxRow],
    ) -> Result<Confirmed<'r>, RelayError> {
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let confirm = self.publish(broker, row).await?;
            pending.push((row, confirm));
        }
        let mut outcome = Confirmed {
            confirmed: Vec::with_capacity(rows.len()),
            returned: Vec::new(),
            retry_later: 0,
        };
        for (row, confirm) in pending {
            let id = row.id;
            match confirm.await {
                Ok(Confirmation::Ack(None)) => outcome.confirmed.push(id),
                Ok(Confirmation::Ack(Some(returned))) => {
                    tracing::debug!(outbox_id = id, reply = %returned.reply_text, "change event unroutable");
                    outcome.returned.push((id, row.mapping.as_deref()));
                }
                Ok(other) => {
                    tracing::warn!(outbox_id = id, confirmation = ?other, "change event not confirmed");
                    outcome.retry_later += 1;
                }
                Err(e) => {
                    tracing::warn!(outbox_id = id, error = %e, "publisher confirm failed");
                    outcome.retry_later += 1;
                }
            }
        }
        Ok(outcome)
    }

    async fn publish(
        &self,
        broker: &BrokerConnection,
        row: &OutboxRow,
    ) -> Result<lapin::PublisherConfirm, RelayError> {
        let topology = &self.settings.broker.topology;
        let event = ChangeEvent::from_row(row);
        let payload = serde_json::to_vec(&event).map_err(RelayError::Encode)?;
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from("x-schema-version"),
            AMQPValue::LongUInt(SCHEMA_VERSION),
        );
        let properties = BasicProperties::default()
            .with_message_id(row.id.to_string().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2) // persistent: survives a broker restart
            .with_timestamp(row.created_at.timestamp().max(0) as u64)
            .with_headers(headers);
        let routing_key = match &row.mapping {
            Some(lane) => topology.lane_routing_key(lane, &row.object_id),
            None => topology.routing_key(&row.object_id),
        };
        broker
            .channel
            .basic_publish(
                topology.exchange().into(),
                routing_key.into(),
                // mandatory: an unroutable message comes back instead of vanishing.
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &payload,
                properties,
            )
            .await
            .map_err(RelayError::Publish)
    }

    /// Deletes published rows older than the retention period.
    pub async fn purge(&self) -> Result<u64, RelayError> {
        let deleted = outbox::purge_published(&self.pool, self.settings.retention).await?;
        if deleted > 0 {
            tracing::info!(deleted, "purged published outbox rows");
        }
        Ok(deleted)
    }
}
