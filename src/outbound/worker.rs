//! The outbound worker: consumes change events from the partition queues it owns and applies
//! them to Salesforce through [`SyncEngine`], acking each message only once its outcome (in
//! step, or a sync failure) is committed in Postgres.
//!
//! - **Lanes.** A worker applies one outbound mapping and consumes only that mapping's lane
//!   of queues (`super::topology`); several workers of several mappings may share a process
//!   and a pool, each with its own id, membership, statistics and pause, so one org paused or
//!   failing leaves the others' changes flowing.
//! - **Consumption.** The live workers of a lane divide its partitions among themselves
//!   through Postgres ([`super::assignment`]); a worker consumes only its own, one channel and
//!   consumer per partition ([`super::subscriptions`]), manual acks, a bounded prefetch per
//!   consumer. When
//!   the assignment changes, between two batches, it closes the channels of the partitions it
//!   lost (their unacked messages go back to the queue) and subscribes to those it gained.
//!   The queues stay single-active-consumer, so during a hand-over a partition's new owner
//!   waits until the old one has let go, and each user's events go to one worker at a time.
//! - **Batching.** After the first event arrives, whatever else is already buffered is taken
//!   at once, and the worker waits at most `batch_window` (a few ms) for more, up to
//!   `batch_max`; a lone change is therefore sent almost at once, and a burst goes out in
//!   sObject Collections calls of up to 200 records.
//! - **Transient failures** (503, lock row, timeouts: what the client's own retries did not
//!   cure) are held *in this worker*, unacked, and retried after a jittered exponential delay,
//!   while the other users' events keep flowing through the prefetch window. Requeueing
//!   instead (nack) would count against the queue's delivery limit and dead-letter the event,
//!   and would spin without a delay. A newer event of the same user joins the held one at
//!   once. After `max_attempts` the change becomes a sync failure. A crash loses nothing: the
//!   held messages are still unacked, so the broker redelivers them.
//! - **Rate limit** (`REQUEST_LIMIT_EXCEEDED`): the worker stops consuming and retries the
//!   affected changes after a pause that doubles up to `rate_limit_max_pause`; attempts are
//!   not counted, so a spent daily allowance never turns into failures.
//! - **Re-authorization needed** (refresh token revoked, none stored, client refused): every
//!   change would fail alike, so none is recorded as a failure; the session ends (the broker
//!   takes the unacked events back) and the worker waits in [`AuthorizationGate`] until a new
//!   token is stored, then consumes again.
//! - **Postgres unreachable**: the batch is not acked and is tried again after a pause.
//! - **Shutdown**: stop taking events, finish the batch in hand, close the channels (the
//!   broker requeues anything unacked, such as held retries), deregister, exit.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use tokio::sync::watch;
use tokio::time::Instant;

use super::assignment::Membership;
use super::authorization::{AuthorizationGate, PauseState};
use super::broker::{
    BrokerConnection, BrokerError, BrokerSettings, BrokerStatus, reconnect_backoff,
};
use super::message::ChangeEvent;
use super::subscriptions::{Next, Subscriptions};
use super::sync::{OBJECT_TYPE, Outcome, SyncEngine, UserChange};
use crate::metrics::Metrics;
use crate::repo::Pool;
use crate::repo::outbox::Operation;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub broker: BrokerSettings,
    /// Unacked messages per partition consumer. Enough that a worker holding a quarter of
    /// the partitions still has a full batch waiting while one is at Salesforce (at 50, four
    /// workers' batches shrank and each waited for redelivery after its acks).
    pub prefetch: u16,
    /// Changes applied together (Salesforce takes 200 records per Collections call).
    pub batch_max: usize,
    /// How long to wait for more events once one is in hand.
    pub batch_window: Duration,
    /// Attempts of a change failing transiently before it becomes a sync failure.
    pub max_attempts: u32,
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
    /// The first pause after `REQUEST_LIMIT_EXCEEDED`; doubles up to the maximum.
    pub rate_limit_pause: Duration,
    pub rate_limit_max_pause: Duration,
    /// How often a paused worker looks for a new Salesforce token.
    pub authorization_poll: Duration,
    /// A worker silent for this long is dead to its peers, who take its partitions.
    pub lease_ttl: Duration,
}

impl WorkerSettings {
    pub fn new(broker: BrokerSettings) -> WorkerSettings {
        WorkerSettings {
            broker,
            prefetch: 200,
            batch_max: crate::salesforce::MAX_RECORDS_PER_CALL,
            batch_window: Duration::from_millis(3),
            max_attempts: 8,
            retry_min_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(60),
            rate_limit_pause: Duration::from_secs(30),
            rate_limit_max_pause: Duration::from_secs(600),
            authorization_poll: Duration::from_secs(5),
            lease_ttl: crate::repo::workers::DEFAULT_LEASE_TTL,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("the broker channel failed")]
    Channel(#[source] lapin::Error),
    #[error("the broker stopped delivering")]
    Disconnected,
    #[error("the Salesforce connector needs to be authorized again")]
    AwaitingAuthorization,
    #[error("the Salesforce connector is disabled")]
    ConnectorDisabled,
}

/// The events of one user in hand, and what is known about its change.
struct Group {
    /// The partition its events came from (all of a user's events share one).
    partition: u16,
    change: UserChange,
    ackers: Vec<Acker>,
}

/// A change waiting for its next transient-failure retry.
struct Held {
    group: Group,
    due: Instant,
}

/// Changes this worker completed (acked), per partition. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkerStats(Arc<Vec<AtomicU64>>);

impl WorkerStats {
    fn new(partitions: u16) -> WorkerStats {
        WorkerStats(Arc::new(
            (0..partitions).map(|_| AtomicU64::new(0)).collect(),
        ))
    }

    fn add(&self, partition: u16) {
        if let Some(c) = self.0.get(usize::from(partition)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Changes completed per partition.
    pub fn per_partition(&self) -> Vec<u64> {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

pub struct Worker {
    engine: SyncEngine,
    /// The mapping `engine` applies: the lane of queues this worker consumes.
    lane: String,
    /// Where the worker keeps its membership and partition leases.
    pool: Pool,
    metrics: Metrics,
    settings: WorkerSettings,
    status: BrokerStatus,
    gate: AuthorizationGate,
    worker_id: String,
    stats: WorkerStats,
}

impl Worker {
    /// A worker applying `engine`'s mapping (consuming its lane, which is declared with the
    /// others of `settings` when they lack it), its membership in `pool`, counting what it
    /// consumes in `metrics`.
    pub fn new(
        engine: SyncEngine,
        pool: Pool,
        metrics: Metrics,
        mut settings: WorkerSettings,
        status: BrokerStatus,
    ) -> Worker {
        let lane = engine.mapping_name().to_owned();
        settings.broker.topology = settings.broker.topology.with_lanes([lane.as_str()]);
        let gate = engine.authorization_gate(settings.authorization_poll);
        let stats = WorkerStats::new(settings.broker.topology.partitions);
        metrics.worker_started(engine.client().system_name());
        Worker {
            engine,
            lane,
            pool,
            metrics,
            settings,
            status,
            gate,
            worker_id: uuid::Uuid::new_v4().simple().to_string(),
            stats,
        }
    }

    /// The system of the connector this worker writes to.
    pub fn system_name(&self) -> &str {
        self.engine.client().system_name()
    }

    /// Whether (and why) the worker is paused, for readiness.
    pub fn pause_state(&self) -> PauseState {
        self.gate.state()
    }

    /// This worker's id in `outbound_workers`.
    pub fn id(&self) -> &str {
        &self.worker_id
    }

    /// The lane it consumes: the name of the mapping it applies.
    pub fn lane(&self) -> &str {
        &self.lane
    }

    pub fn stats(&self) -> WorkerStats {
        self.stats.clone()
    }

    /// Runs until `shutdown` completes, reconnecting to the broker with jittered backoff.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let (held_tx, held_rx) = watch::channel(BTreeSet::new());
        let (target_tx, target_rx) = watch::channel(BTreeSet::new());
        // Deregistration waits until this worker's channels are closed.
        let (leave_tx, leave) = watch::channel(false);
        let membership = Membership {
            pool: self.pool.clone(),
            worker_id: self.worker_id.clone(),
            lane: self.lane.clone(),
            host: super::assignment::local_host(),
            partitions: self.settings.broker.topology.partitions,
            lease_ttl: self.settings.lease_ttl,
            broker: self.status.clone(),
        };
        // One task with the consumption: a worker aborted or killed stops heartbeating too.
        let membership = membership.run(held_rx, target_tx, leave);
        let dead_letters = self.engine.dead_letters(BrokerSettings {
            connection_name: format!("{} dead letters", self.settings.broker.connection_name),
            ..self.settings.broker.clone()
        });
        let dead_letters = dead_letters.run_until(stop.clone());
        let consume = async {
            self.consume(stop, target_rx, &held_tx).await;
            let _ = leave_tx.send(true);
        };
        tokio::join!(membership, consume, dead_letters);
        tracing::info!("outbound worker stopped");
    }

    /// Consumes, reconnecting to the broker with jittered backoff, until `stop`.
    async fn consume(
        &self,
        stop: watch::Receiver<bool>,
        target_rx: watch::Receiver<BTreeSet<u16>>,
        held_tx: &watch::Sender<BTreeSet<u16>>,
    ) {
        let mut backoff = reconnect_backoff();
        loop {
            if *stop.borrow() {
                break;
            }
            let started = Instant::now();
            let result = self.session(stop.clone(), target_rx.clone(), held_tx).await;
            held_tx.send_replace(BTreeSet::new());
            if matches!(
                result,
                Err(WorkerError::AwaitingAuthorization | WorkerError::ConnectorDisabled)
            ) {
                // Holding changes back is this worker doing its job: readiness stays as it
                // was and reports the pause itself.
                if self.gate.wait(&mut stop.clone()).await {
                    break;
                }
                continue;
            }
            match result {
                Ok(()) => {
                    self.status.stopped();
                    break;
                }
                Err(e) => {
                    self.status.set(false);
                    if started.elapsed() > Duration::from_secs(10) {
                        // A long healthy stretch: the next outage starts from a short delay.
                        backoff = reconnect_backoff();
                    }
                    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), retry_in = ?delay, "outbound worker interrupted");
                    let mut stop = stop.clone();
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// One connected stretch. `Ok` on shutdown, `Err` when the broker connection fails.
    async fn session(
        &self,
        mut stop: watch::Receiver<bool>,
        mut target: watch::Receiver<BTreeSet<u16>>,
        held_tx: &watch::Sender<BTreeSet<u16>>,
    ) -> Result<(), WorkerError> {
        let broker = BrokerConnection::open(&self.settings.broker).await?;
        let mut subs = Subscriptions::new(
            self.settings.broker.topology.clone(),
            self.lane.clone(),
            self.settings.broker.connection_name.clone(),
            self.settings.prefetch,
        );
        self.status.set(true);
        tracing::info!(worker = %self.worker_id, lane = %self.lane, "outbound worker connected");
        let mut held: HashMap<String, Held> = HashMap::new();
        // The assignment is applied between batches, never with a delivery in hand.
        target.mark_changed();
        let result = loop {
            if target.has_changed().unwrap_or(false) {
                let want = target.borrow_and_update().clone();
                if let Err(e) = self.reassign(&broker, &mut subs, &want, &mut held).await {
                    break Err(e);
                }
                held_tx.send_replace(subs.held());
            }
            let next_due = held.values().map(|h| h.due).min();
            let first = tokio::select! {
                _ = stop.wait_for(|s| *s) => break Ok(()),
                // An error means the membership task ended: keep the partitions held.
                Ok(()) = target.changed() => {
                    target.mark_changed();
                    continue;
                }
                next = subs.next() => match next {
                    Next::Delivery(p, d) => Some((p, d)),
                    Next::Lost(p, e) => break Err(lost(p, e)),
                },
                () = sleep_until(next_due) => None,
            };
            let mut batch = Vec::new();
            if let Some(d) = first {
                batch.push(d);
                if let Err(e) = self.fill(&mut subs, &mut batch).await {
                    break Err(e);
                }
            }
            let groups = match self.group(batch, &mut held).await {
                Ok(g) => g,
                Err(e) => break Err(e),
            };
            if groups.is_empty() {
                continue;
            }
            if let Err(e) = self.process(groups, &mut held, &mut stop).await {
                break Err(e);
            }
            if !broker.is_connected() {
                break Err(WorkerError::Disconnected);
            }
        };
        // Held retries stay unacked: closing the channels hands them back to the broker.
        drop(held);
        subs.release_all().await;
        broker.close().await;
        result
    }

    /// Lets go of the partitions not in `want` (with the retries held for them: closing a
    /// partition's channel requeues them) and subscribes to the new ones.
    async fn reassign(
        &self,
        broker: &BrokerConnection,
        subs: &mut Subscriptions,
        want: &BTreeSet<u16>,
        held: &mut HashMap<String, Held>,
    ) -> Result<(), WorkerError> {
        let have = subs.held();
        if have == *want {
            return Ok(());
        }
        for &p in have.difference(want) {
            held.retain(|_, h| h.group.partition != p);
            subs.release(p).await;
        }
        for &p in want.difference(&have) {
            subs.subscribe(&broker.connection, p)
                .await
                .map_err(WorkerError::Channel)?;
        }
        tracing::info!(worker = %self.worker_id, lane = %self.lane, partitions = ?subs.held(), "outbound worker consuming");
        Ok(())
    }

    /// Takes what is already buffered, waiting at most `batch_window` for more.
    async fn fill(
        &self,
        subs: &mut Subscriptions,
        batch: &mut Vec<(u16, lapin::message::Delivery)>,
    ) -> Result<(), WorkerError> {
        let deadline = Instant::now() + self.settings.batch_window;
        while batch.len() < self.settings.batch_max {
            match tokio::time::timeout_at(deadline, subs.next()).await {
                Ok(Next::Delivery(p, d)) => batch.push((p, d)),
                Ok(Next::Lost(p, e)) => return Err(lost(p, e)),
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Collapses deliveries into one group per user, joined by the user's held retry (now due
    /// or not: a newer event means the current state should go now) and by every due retry.
    async fn group(
        &self,
        batch: Vec<(u16, lapin::message::Delivery)>,
        held: &mut HashMap<String, Held>,
    ) -> Result<Vec<Group>, WorkerError> {
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut add =
            |group: Group, groups: &mut Vec<Group>| match index.get(&group.change.object_id) {
                Some(&i) => {
                    let Some(g) = groups.get_mut(i) else {
                        return;
                    };
                    g.change.absorb(&group.change);
                    g.ackers.extend(group.ackers);
                }
                None => {
                    index.insert(group.change.object_id.clone(), groups.len());
                    groups.push(group);
                }
            };
        for (partition, delivery) in batch {
            let event: ChangeEvent = match serde_json::from_slice(&delivery.data) {
                Ok(e) => e,
                Err(e) => {
                    // Not ours to interpret: the dead-letter queue keeps it for inspection.
                    tracing::error!(error = %e, "undecodable change event sent to the dead-letter queue");
                    delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                        .map_err(WorkerError::Channel)?;
                    continue;
                }
            };
            if event.object_type != OBJECT_TYPE {
                // No outbound mapping reads other object types.
                delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(WorkerError::Channel)?;
                self.metrics.consumed(self.engine.client().system_name(), 1);
                continue;
            }
            if let Some(h) = held.remove(&event.object_id) {
                add(h.group, &mut groups);
            }
            add(
                Group {
                    partition,
                    change: UserChange {
                        object_id: event.object_id.clone(),
                        rev: event.rev,
                        force: event.operation() == Some(Operation::Sync),
                        repair: event.repair.clone(),
                        committed_at: event.timestamp,
                        attempts: 0,
                        last_attempt: false,
                    },
                    ackers: vec![delivery.acker],
                },
                &mut groups,
            );
        }
        let now = Instant::now();
        let due: Vec<String> = held
            .iter()
            .filter(|(_, h)| h.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for id in due {
            if let Some(h) = held.remove(&id) {
                add(h.group, &mut groups);
            }
        }
        for g in &mut groups {
            g.change.last_attempt = g.change.attempts + 1 >= self.settings.max_attempts;
        }
        Ok(groups)
    }

    /// Applies groups until each is done or held; acks the done ones.
    async fn process(
        &self,
        mut groups: Vec<Group>,
        held: &mut HashMap<String, Held>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), WorkerError> {
        let mut rate_pause = self.settings.rate_limit_pause;
        let mut db_backoff = reconnect_backoff();
        while !groups.is_empty() {
            if !self.gate.enabled().await {
                // Left unacked: ending the session hands them back to the queue.
                return Err(WorkerError::ConnectorDisabled);
            }
            let changes: Vec<UserChange> = groups.iter().map(|g| g.change.clone()).collect();
            let outcomes = match self.engine.apply(&changes).await {
                Ok(o) => o,
                Err(e) => {
                    // Nothing was recorded: keep the messages, try again shortly.
                    let delay = db_backoff.next().unwrap_or(Duration::from_secs(30));
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), retry_in = ?delay, "cannot apply changes");
                    if pause(stop, delay).await {
                        return Ok(()); // shutting down: unacked, redelivered later
                    }
                    continue;
                }
            };
            let mut limited = Vec::new();
            let mut awaiting_authorization = false;
            let mut done = Vec::new();
            for (group, outcome) in groups.into_iter().zip(outcomes) {
                match outcome {
                    Outcome::Done => done.push(group),
                    Outcome::Retry { error } => {
                        let mut group = group;
                        group.change.attempts += 1;
                        let delay = self.retry_delay(group.change.attempts);
                        tracing::info!(user = %group.change.object_id, attempts = group.change.attempts, retry_in = ?delay, %error, "transient Salesforce failure; retrying later");
                        held.insert(
                            group.change.object_id.clone(),
                            Held {
                                group,
                                due: Instant::now() + delay,
                            },
                        );
                    }
                    Outcome::RateLimited => limited.push(group),
                    // Left unacked: ending the session hands them back to the queue.
                    Outcome::AwaitingAuthorization => awaiting_authorization = true,
                }
            }
            // Recorded in Postgres already: acked together, not one round trip each.
            let acks = done
                .iter()
                .flat_map(|g| g.ackers.iter())
                .map(|a| a.ack(BasicAckOptions::default()));
            futures_util::future::try_join_all(acks)
                .await
                .map_err(WorkerError::Channel)?;
            for group in &done {
                self.metrics
                    .consumed(self.engine.client().system_name(), group.ackers.len());
                self.stats.add(group.partition);
            }
            if awaiting_authorization {
                return Err(WorkerError::AwaitingAuthorization);
            }
            if !limited.is_empty() {
                tracing::warn!(changes = limited.len(), pause = ?rate_pause, "Salesforce API limit reached: consumption paused");
                if pause(stop, rate_pause).await {
                    return Ok(());
                }
                rate_pause = (rate_pause * 2).min(self.settings.rate_limit_max_pause);
            }
            groups = limited;
        }
        Ok(())
    }

    /// Jittered exponential delay before attempt `attempts + 1`.
    fn retry_delay(&self, attempts: u32) -> Duration {
        crate::retry_delay::nth(
            self.settings.retry_min_delay,
            self.settings.retry_max_delay,
            attempts,
        )
    }
}

fn lost(partition: u16, error: Option<lapin::Error>) -> WorkerError {
    match error {
        Some(e) => WorkerError::Channel(e),
        None => {
            tracing::warn!(partition, "the broker cancelled a partition consumer");
            WorkerError::Disconnected
        }
    }
}

/// Sleeps `delay`; true when shutdown came first.
async fn pause(stop: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => true,
        () = tokio::time::sleep(delay) => false,
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The implicit-sync mapping of the sample (managed user → Salesforce user).
pub const OUTBOUND_MAPPING: &str = "managedUser_systemSalesforceUser";
