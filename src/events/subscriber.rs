//! One connector's change event subscriber: hold the connector's lease (one active subscriber
//! across replicas, a standby takes over when it runs out), subscribe from the stored replay
//! id, gather events into batches, reconcile the users they name, the replay id of the batch's
//! last event committing with the writes they cause. A batch larger than one run commits its
//! first runs before the position: a crash then replays them, which changes nothing (an
//! unchanged user writes no revision).

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use sf_client::pubsub::{ChangeEvent, PubSub, PubSubError, Replay, Subscription};
use tokio::time::Instant;

use super::plan::Plan;
use crate::config::ChangeEventsConfig;
use crate::metrics::Metrics;
use crate::recon::by_ids::IdsOutcome;
use crate::recon::{ReconEngine, ReconError, ReconRequest};
use crate::repo::Pool;
use crate::repo::event_subscriptions::{self, Position};
use crate::salesforce::{Identity, SalesforceClient};

/// Events asked for per request (the Pub/Sub API's maximum).
const FETCH_BATCH: u16 = 100;

#[derive(Debug, Clone)]
pub struct SubscriberSettings {
    /// How long a lease lasts without renewal; a standby takes over after it.
    pub lease_ttl: Duration,
    /// How long a batch waits for more events after its first one arrived.
    pub linger: Duration,
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
}

impl Default for SubscriberSettings {
    fn default() -> Self {
        SubscriberSettings {
            lease_ttl: Duration::from_secs(30),
            linger: Duration::from_millis(50),
            retry_min_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubscriberError {
    #[error(
        "change events of {0}: no mapping with enableSync has system/{0}/User as its source, so there is nothing to apply them to"
    )]
    NoMapping(String),
    #[error("change events of {0}: no such connector")]
    NoConnector(String),
    #[error(transparent)]
    PubSub(#[from] PubSubError),
}

/// Why a subscription ended.
#[derive(Debug)]
enum Ended {
    Shutdown,
    LeaseLost,
    /// The stream broke or a batch could not be applied: subscribe again after a pause.
    Failed(String, Option<PubSubError>),
}

pub struct Subscriber {
    config: ChangeEventsConfig,
    pubsub: PubSub,
    engine: ReconEngine,
    pool: Pool,
    mapping: String,
    mapping_query: Option<Value>,
    holder: String,
    metrics: Metrics,
    settings: SubscriberSettings,
}

impl Subscriber {
    pub fn new(
        config: ChangeEventsConfig,
        engine: ReconEngine,
        pool: Pool,
        holder: String,
        metrics: Metrics,
        settings: SubscriberSettings,
    ) -> Result<Subscriber, SubscriberError> {
        let source = format!("system/{}/User", config.connector);
        let mapping = engine
            .sync_config()
            .mappings
            .iter()
            .find(|m| m.source == source && m.enable_sync && !m.links_reversed())
            .ok_or_else(|| SubscriberError::NoMapping(config.connector.clone()))?;
        let (mapping, mapping_query) = (mapping.name.clone(), mapping.source_query.clone());
        let client: SalesforceClient = engine
            .connectors()
            .get(&config.connector)
            .cloned()
            .ok_or_else(|| SubscriberError::NoConnector(config.connector.clone()))?;
        let pubsub = PubSub::new(client, &config.endpoint)?;
        Ok(Subscriber {
            config,
            pubsub,
            engine,
            pool,
            mapping,
            mapping_query,
            holder,
            metrics,
            settings,
        })
    }

    pub fn connector(&self) -> &str {
        &self.config.connector
    }

    /// Subscribes whenever it holds the lease, until `shutdown` completes.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown);
        let system = self.config.connector.clone();
        loop {
            let claimed = event_subscriptions::claim(
                &self.pool,
                &system,
                &self.config.topic,
                &self.holder,
                self.settings.lease_ttl.as_secs_f64(),
            )
            .await;
            let ended = match claimed {
                Ok(Some(claimed)) => {
                    tracing::info!(
                        system,
                        holder = self.holder,
                        "change events: subscriber active"
                    );
                    let ended = self.hold(claimed.replay_id, shutdown.as_mut()).await;
                    self.metrics.events_subscribed(&system, false);
                    ended
                }
                Ok(None) => Ended::LeaseLost,
                Err(e) => {
                    tracing::warn!(system, error = %crate::telemetry::error_chain(&e), "change events: cannot read the subscription's lease");
                    Ended::LeaseLost
                }
            };
            if matches!(ended, Ended::Shutdown) {
                let _ = event_subscriptions::release(&self.pool, &system, &self.holder).await;
                return;
            }
            // A standby (or a subscriber that lost its lease) tries again within the lease.
            let pause = self.settings.lease_ttl / 3;
            tokio::select! {
                () = shutdown.as_mut() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// While the lease is ours: subscribe, consume, and subscribe again after failures.
    async fn hold(
        &self,
        stored: Option<Vec<u8>>,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Ended {
        let system = self.config.connector.as_str();
        // A first subscription replays what the event bus retains (72 hours): changes made
        // between enabling events and the first subscription are not lost, and a subscription
        // that is opening cannot miss the first change after it. Applying a change twice
        // writes nothing.
        let mut replay = stored.map_or(Replay::Earliest, Replay::After);
        let mut failures = 0u32;
        // What people should still read once subscribed again (why a full run started).
        let mut note = String::new();
        loop {
            let attempt = async {
                let identity = self.pubsub.identity().await?;
                let sub = self
                    .pubsub
                    .subscribe(&self.config.topic, replay.clone(), FETCH_BATCH)
                    .await?;
                Ok::<_, PubSubError>((identity, sub))
            };
            let opened = tokio::select! {
                () = shutdown.as_mut() => return Ended::Shutdown,
                r = attempt => r,
            };
            let ended = match opened {
                Ok((identity, sub)) => {
                    self.state("SUBSCRIBED", &note).await;
                    self.metrics.events_subscribed(system, true);
                    tracing::info!(
                        system,
                        topic = self.config.topic,
                        "change events: subscribed"
                    );
                    failures = 0;
                    self.consume(sub, &identity, &mut replay, shutdown.as_mut())
                        .await
                }
                Err(e) => Ended::Failed("cannot subscribe".into(), Some(e)),
            };
            self.metrics.events_subscribed(system, false);
            let (what, error) = match ended {
                Ended::Failed(what, error) => (what, error),
                other => return other,
            };
            if let Some(PubSubError::ReplayIdInvalid { message, .. }) = &error {
                replay = Replay::Latest;
                note = self.replay_id_lost(message).await;
                continue;
            }
            failures += 1;
            let message = match &error {
                Some(e) => format!("{what}: {}", crate::telemetry::error_chain(e)),
                None => what,
            };
            tracing::warn!(
                system,
                failures,
                "change events: {message}; subscribing again"
            );
            self.state("RECONNECTING", &message).await;
            let delay = self.retry_delay(failures);
            tokio::select! {
                () = shutdown.as_mut() => return Ended::Shutdown,
                () = tokio::time::sleep(delay) => {}
            }
            if let Err(ended) = self.keep_lease().await {
                return ended;
            }
        }
    }

    /// Reads the stream, applying a batch when it is full, or the linger time after its first
    /// event once the stream is caught up; renews the lease on the way.
    async fn consume(
        &self,
        mut sub: Subscription,
        identity: &Identity,
        replay: &mut Replay,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Ended {
        let system = self.config.connector.as_str();
        let renew_every = self.settings.lease_ttl / 3;
        let mut renewed = Instant::now();
        let mut gathered: Vec<ChangeEvent> = Vec::new();
        // A batch is applied when it is full; the linger time after its first event when the
        // stream is caught up (its last response was not a full one); and, while Salesforce
        // keeps sending full responses (a burst), ten times the linger at the latest. A trickle
        // is applied at once, a burst in batches of a whole run (fewer runs, fewer REST reads).
        let mut first_at = Instant::now();
        let mut backlog = false;
        let limit = |backlog: bool| match backlog {
            true => self.settings.linger * 10,
            false => self.settings.linger,
        };
        loop {
            let wait = if gathered.is_empty() {
                renew_every
            } else {
                limit(backlog).saturating_sub(first_at.elapsed())
            };
            let next = tokio::select! {
                () = shutdown.as_mut() => return Ended::Shutdown,
                r = tokio::time::timeout(wait, sub.next()) => r,
            };
            let quiet = next.is_err();
            match next {
                Err(_quiet) => backlog = false,
                Ok(Ok(Some(received))) => {
                    self.metrics.events_received(system, received.events.len());
                    backlog = received.events.len() >= usize::from(FETCH_BATCH / 2);
                    if received.events.is_empty() {
                        // A keepalive: where the stream stands, so that a long quiet spell
                        // does not leave the stored replay id to age out of retention.
                        if gathered.is_empty() && !received.latest_replay_id.is_empty() {
                            let position = self.position(received.latest_replay_id, None);
                            if let Err(ended) = self.checkpoint(&position).await {
                                return ended;
                            }
                            *replay = Replay::After(position.replay_id);
                        }
                    } else {
                        if gathered.is_empty() {
                            first_at = Instant::now();
                        }
                        gathered.extend(received.events);
                    }
                }
                Ok(Ok(None)) => return Ended::Failed("the server ended the stream".into(), None),
                Ok(Err(e)) => return Ended::Failed("the stream broke".into(), Some(e)),
            }
            let full = gathered.len() >= self.config.batch_size;
            let due = quiet || first_at.elapsed() >= limit(backlog);
            if !gathered.is_empty() && (full || due) {
                let plan = Plan::of(&gathered, &identity.user_id);
                match self.apply(&plan, shutdown.as_mut()).await {
                    Ok(()) => {}
                    Err(ended) => return ended,
                }
                gathered.clear();
                if let Some(id) = plan.last_replay_id {
                    *replay = Replay::After(id);
                }
                renewed = Instant::now();
            }
            if renewed.elapsed() >= renew_every {
                if let Err(ended) = self.keep_lease().await {
                    return ended;
                }
                renewed = Instant::now();
            }
        }
    }

    /// Reconciles the batch's users (retrying while a full run holds the mapping or a run
    /// fails); its last replay id is stored with the writes they cause (fenced by the lease),
    /// or on its own when no user is to be read.
    async fn apply(
        &self,
        plan: &Plan,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), Ended> {
        let system = self.config.connector.as_str();
        if plan.overflow {
            self.full_reconciliation(
                "Salesforce reported more changes than it could describe (GAP_OVERFLOW)",
            )
            .await;
        }
        let position = plan
            .last_replay_id
            .clone()
            .map(|replay_id| self.position(replay_id, plan.last_commit()));
        let mut attempts = 0u32;
        while !plan.ids.is_empty() {
            let outcome = self
                .engine
                .reconcile_ids(
                    &self.mapping,
                    self.mapping_query.as_ref(),
                    &plan.ids,
                    position.as_ref(),
                )
                .await;
            let problem = match outcome {
                Ok(IdsOutcome::Done(_)) => break,
                Ok(IdsOutcome::Busy { mapping, .. }) => {
                    format!("a reconciliation of {mapping} is running; the batch waits for it")
                }
                Ok(IdsOutcome::Failed {
                    run, state, reason, ..
                }) => {
                    format!("reconciliation {run} of the changed users ended {state}{reason}")
                }
                Err(e) => format!(
                    "cannot reconcile the changed users: {}",
                    crate::telemetry::error_chain(&e)
                ),
            };
            attempts += 1;
            tracing::warn!(system, attempts, "change events: {problem}; trying again");
            self.state("WAITING", &problem).await;
            tokio::select! {
                () = shutdown.as_mut() => return Err(Ended::Shutdown),
                () = tokio::time::sleep(self.retry_delay(attempts)) => {}
            }
            self.keep_lease().await?;
        }
        if attempts > 0 {
            self.state("SUBSCRIBED", "the batch waited and was applied")
                .await;
        }
        match &position {
            // The runs stored it (unless its fence found the lease gone, which renewing tells).
            Some(_) if !plan.ids.is_empty() => self.keep_lease().await?,
            Some(p) => self.checkpoint(p).await?,
            None => {}
        }
        self.metrics.events_applied(system, &plan.lags(Utc::now()));
        self.metrics.events_skipped(system, "echo", plan.echoes);
        self.metrics
            .events_skipped(system, "entity", plan.other_entities);
        tracing::debug!(
            system,
            users = plan.ids.len(),
            applied = plan.applied(),
            echoes = plan.echoes,
            "change events applied"
        );
        Ok(())
    }

    /// The stored replay id is no longer retained: the missed changes can only be found by a
    /// full reconciliation; the subscription goes on from the latest event.
    async fn replay_id_lost(&self, message: &str) -> String {
        let _ =
            event_subscriptions::forget_replay_id(&self.pool, &self.config.connector, &self.holder)
                .await;
        self.full_reconciliation(&format!(
            "the stored replay id is no longer retained ({message})"
        ))
        .await
    }

    /// Starts a full reconciliation of the mapping; what was done, as people read it.
    async fn full_reconciliation(&self, why: &str) -> String {
        let system = self.config.connector.as_str();
        let request = ReconRequest {
            mapping: self.mapping.clone(),
            ..ReconRequest::default()
        };
        let message = match self.engine.start(request).await {
            Ok(run) => format!(
                "{why}: started reconciliation {} of {}",
                run.id, self.mapping
            ),
            Err(ReconError::AlreadyRunning(m)) => {
                format!("{why}: a reconciliation of {m} is already running")
            }
            Err(e) => format!(
                "{why}: could not start a reconciliation of {}: {}",
                self.mapping,
                crate::telemetry::error_chain(&e)
            ),
        };
        tracing::warn!(system, "change events: {message}");
        self.state("RECONCILING", &message).await;
        message
    }

    /// This subscriber's position after `replay_id` (committed at `last_commit_at`).
    fn position(
        &self,
        replay_id: Vec<u8>,
        last_commit_at: Option<chrono::DateTime<Utc>>,
    ) -> Position {
        Position {
            connector: self.config.connector.clone(),
            holder: self.holder.clone(),
            replay_id,
            last_commit_at,
        }
    }

    /// Stores where to resume, fenced by the lease.
    async fn checkpoint(&self, position: &Position) -> Result<(), Ended> {
        match position.store(&self.pool).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Ended::LeaseLost),
            Err(e) => Err(Ended::Failed(
                format!(
                    "cannot store the replay id: {}",
                    crate::telemetry::error_chain(&e)
                ),
                None,
            )),
        }
    }

    /// Renews the lease. Any doubt, a refusal or a database error, counts as a lost lease:
    /// the subscriber goes back to claiming it rather than go on without knowing.
    async fn keep_lease(&self) -> Result<(), Ended> {
        let ttl = self.settings.lease_ttl.as_secs_f64();
        match event_subscriptions::renew(&self.pool, &self.config.connector, &self.holder, ttl)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(Ended::LeaseLost),
            Err(e) => {
                tracing::warn!(system = self.config.connector, error = %crate::telemetry::error_chain(&e), "change events: cannot renew the lease");
                Err(Ended::LeaseLost)
            }
        }
    }

    async fn state(&self, state: &str, message: &str) {
        if let Err(e) = event_subscriptions::set_state(
            &self.pool,
            &self.config.connector,
            &self.holder,
            state,
            message,
        )
        .await
        {
            tracing::warn!(system = self.config.connector, error = %crate::telemetry::error_chain(&e), "change events: cannot record the state");
        }
    }

    fn retry_delay(&self, attempts: u32) -> Duration {
        crate::retry_delay::nth(
            self.settings.retry_min_delay,
            self.settings.retry_max_delay,
            attempts,
        )
    }
}
