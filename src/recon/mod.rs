//! The reconciliation engine, both directions: `systemSalesforceUser_managedUser` (a mapping
//! from `system/<connector>/User` to `managed/user`, over the Salesforce query stream) and
//! `managedUser_systemSalesforceUser` (the other way, `outbound/`).
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`ReconEngine`]: start, read, list, cancel runs |
//! | `run.rs` | one run's lifecycle: lock, row, heartbeat, the direction's phases, final state |
//! | `run_state.rs` | what every run carries: request, mapping, counters, stage, checkpoint |
//! | `inbound.rs` | the inbound direction: its queries and phases, in order |
//! | `outbound/` | the outbound direction: linked, unseen and unassigned passes (see there) |
//! | `source_phase.rs` | Salesforce pages → situations → planned work (`planner`), set-wise per page |
//! | `target_phase.rs` | managed users the source phase did not touch |
//! | `seen.rs` | which targets the source phase touched (memory, then `recon_seen`) |
//! | `apply.rs` | a page's planned work in one transaction (managed writes, outbox, links, audit) |
//! | `guard.rs` | the mass-change guard over held-back deletes |
//! | `soql.rs` | the source query: fields and `_queryFilter` → SOQL |
//! | `summary.rs` | counters and IDM's summary shape |
//!
//! # Design
//!
//! - **Pages, not objects.** Each Salesforce page (up to 2,000 users, one API call) is
//!   handled set-wise: its links in one query, its linked targets in one query, its
//!   correlation queries batched (`UNION ALL` of the compiled filters), and all its managed
//!   writes, outbox rows, link changes, seen-marks and audit rows in one transaction.
//! - **No echo.** Every managed write recon makes records, on the link and in the same
//!   transaction, the managed object now in step with Salesforce (`links.synced_snapshot`).
//! - **Bounded memory.** One page at a time; the targets the source phase touched are kept
//!   as 8-byte hashes up to two million (16 MiB), past that in an unlogged table
//!   (`recon_seen`), and the target phase pages through the ids of the managed users by
//!   keyset, loading only those not touched.
//! - **One run per mapping** across replicas: a session advisory lock on a connection of the
//!   run's own. A run whose process died loses its lock with its connection; whoever next
//!   reads the runs (or starts one) sees an ACTIVE run with a free lock and marks it FAILED.
//! - **Cancel** is a flag on the run's row, read at each page boundary, so any replica can
//!   cancel a run that another one executes.

pub mod by_ids;
pub mod guard;
pub mod live_sync;
pub mod soql;
pub mod summary;

mod apply;
mod audited;
mod in_step;
mod inbound;
mod outbound;
mod run;
mod run_state;
mod seen;
mod source_phase;
mod target_phase;
mod user_pages;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::audit_config::AuditConfig;
use crate::config::systems::Resource;
use crate::connectors::Connectors;
use crate::managed::ManagedObjects;
use crate::mapping::{Mapping, SyncConfig};
use crate::repo::schedule_firings::Firing;
use crate::repo::{self, Pool, RepoError, event_subscriptions, recon_runs};
use crate::salesforce::{SalesforceClient, SalesforceError};

pub use live_sync::{LiveSync, LiveSyncError, LiveSyncPass};
pub use run_state::RunOutcome;

/// The Salesforce object type recon reads (`system/<connector>/User`).
pub const SOURCE_OBJECT_TYPE: &str = "User";
/// The target resource recon writes.
pub const TARGET_RESOURCE: &str = "managed/user";
/// The managed object type of [`TARGET_RESOURCE`].
pub(crate) const TARGET_TYPE: &str = "user";

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct ReconSettings {
    /// Largest share of managed objects one run may delete without `allowMassChange`.
    pub max_delete_share: f64,
    /// Salesforce query batch size (200..=2000).
    pub source_batch_size: u32,
    /// Managed objects per target-phase page.
    pub target_page_size: i64,
    /// How often a running recon refreshes its heartbeat while a page takes long.
    pub heartbeat_interval: Duration,
    /// Targets the source phase touched that are held in memory (8 bytes each); past this
    /// they are written to `recon_seen`.
    pub seen_in_memory: usize,
    /// Salesforce users linked to nothing an outbound run holds in memory for its target
    /// phase (about 50 bytes each); past this they are written to `recon_unlinked`.
    pub unlinked_in_memory: usize,
}

impl Default for ReconSettings {
    fn default() -> Self {
        ReconSettings {
            max_delete_share: guard::DEFAULT_MAX_DELETE_SHARE,
            source_batch_size: 2000,
            target_page_size: 1000,
            heartbeat_interval: Duration::from_secs(5),
            seen_in_memory: seen::MEMORY_CAP,
            unlinked_in_memory: 200_000,
        }
    }
}

impl ReconSettings {
    /// Defaults, with `IDM_RECON_MAX_DELETE_SHARE` (a number in 0..=1) from the environment.
    pub fn from_env() -> Result<ReconSettings, SettingsError> {
        let mut settings = ReconSettings::default();
        if let Ok(text) = std::env::var("IDM_RECON_MAX_DELETE_SHARE") {
            let share: f64 = text
                .trim()
                .parse()
                .map_err(|_| SettingsError::NotANumber(text.clone()))?;
            if !(0.0..=1.0).contains(&share) {
                return Err(SettingsError::OutOfRange(text));
            }
            settings.max_delete_share = share;
        }
        Ok(settings)
    }
}

/// A recon setting from the environment that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("IDM_RECON_MAX_DELETE_SHARE={0:?} is not a number")]
    NotANumber(String),
    #[error("IDM_RECON_MAX_DELETE_SHARE={0:?} must be between 0 and 1")]
    OutOfRange(String),
}

/// What to reconcile and how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconRequest {
    pub mapping: String,
    /// Assess and report; write nothing (no managed object, link or outbox row).
    pub analyze: bool,
    /// Let the run delete more than the guard's share.
    pub allow_mass_change: bool,
    /// `reconById`: reconcile this one source id (no target phase).
    pub source_id: Option<String>,
    /// Overrides of the mapping's `sourceQuery`, `targetQuery`, `runTargetPhase`.
    pub source_query: Option<Value>,
    pub target_query: Option<Value>,
    pub run_target_phase: Option<bool>,
    /// The run reconciles users Salesforce reported changed (liveSync, change events): one
    /// deletion or deactivation among them is that user's own change, never a mass change.
    pub reported_changes: bool,
    /// A change event subscription's position after the events this run applies: stored in
    /// the transaction of the run's last write (at its end when it writes nothing), only if
    /// the run succeeds.
    pub position: Option<event_subscriptions::Position>,
}

impl ReconRequest {
    /// Whether the run has a target phase: never for `reconById`, else as asked or as the
    /// mapping says.
    pub fn runs_target_phase(&self, mapping: &Mapping) -> bool {
        self.source_id.is_none() && self.run_target_phase.unwrap_or(mapping.run_target_phase)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconError {
    #[error("Mapping {0} not found")]
    UnknownMapping(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("A reconciliation of mapping {0} is already running")]
    AlreadyRunning(String),
    #[error("Reconciliation with id {0} not found.")]
    NotFound(String),
    #[error("Reconciliation {0} is still running: cancel it first")]
    StillActive(String),
    #[error(
        "The Salesforce connector is disabled (system/{0}): enable it on the Admin UI's Connectors page (or in its provisioner file)"
    )]
    ConnectorDisabled(String),
    #[error("the Salesforce query failed")]
    Salesforce(#[from] SalesforceError),
    /// A page's assessment task ended without a result (a bug: it panicked).
    #[error("a page's assessment stopped: {0}")]
    Assessment(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// A started run: its id, and the task executing it.
pub struct StartedRun {
    pub id: String,
    pub task: JoinHandle<RunOutcome>,
}

/// The engine: cheap to clone, shared by the REST API, the CLI and (later) the scheduler.
#[derive(Clone)]
pub struct ReconEngine {
    inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub pool: Pool,
    pub managed: ManagedObjects,
    pub sync: Arc<SyncConfig>,
    /// Every connector; a run uses the one its mapping names.
    pub connectors: Connectors,
    pub settings: ReconSettings,
    /// Where ended runs are counted.
    pub metrics: crate::metrics::Metrics,
    /// Which recon audit entries are written.
    pub audit: AuditConfig,
}

impl ReconEngine {
    pub fn new(
        managed: ManagedObjects,
        sync: Arc<SyncConfig>,
        connectors: Connectors,
        settings: ReconSettings,
    ) -> ReconEngine {
        ReconEngine {
            inner: Arc::new(Inner {
                pool: managed.pool().clone(),
                managed,
                sync,
                connectors,
                settings,
                metrics: crate::metrics::Metrics::process(),
                audit: AuditConfig::default(),
            }),
        }
    }

    /// The same engine, counting its runs in `metrics` (by default the process's registry).
    pub fn with_metrics(self, metrics: crate::metrics::Metrics) -> ReconEngine {
        self.with(|i| i.metrics = metrics)
    }

    /// The same engine, writing the recon audit as `audit` says (by default, as
    /// `conf/audit.json` ships).
    pub fn with_audit(self, audit: AuditConfig) -> ReconEngine {
        self.with(|i| i.audit = audit)
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> ReconEngine {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        change(&mut inner);
        ReconEngine {
            inner: Arc::new(inner),
        }
    }

    pub fn sync_config(&self) -> &SyncConfig {
        &self.inner.sync
    }

    /// Checks the request, takes the mapping's lock, records the run as ACTIVE and starts it
    /// in a task of its own. [`ReconError::AlreadyRunning`] when a run of the mapping is
    /// active anywhere.
    pub async fn start(&self, request: ReconRequest) -> Result<StartedRun, ReconError> {
        self.check_enabled(&request.mapping).await?;
        let mapping = request.mapping.clone();
        match run::start(self.inner.clone(), request, None).await? {
            run::Launch::Started(run) => Ok(run),
            // Only a firing can be claimed by someone else; without one this is not reached.
            run::Launch::FiringTaken => Err(ReconError::AlreadyRunning(mapping)),
        }
    }

    /// Starts a run for a schedule's firing: the firing is claimed in the transaction that
    /// takes the mapping's lock and records the run (or, when a run of the mapping is active,
    /// claimed as skipped, answering [`ReconError::AlreadyRunning`]). `Ok(None)` when another
    /// replica claimed the firing first.
    pub async fn start_fired(
        &self,
        request: ReconRequest,
        firing: &Firing,
    ) -> Result<Option<StartedRun>, ReconError> {
        self.check_enabled(&request.mapping).await?;
        Ok(
            match run::start(self.inner.clone(), request, Some(firing)).await? {
                run::Launch::Started(run) => Some(run),
                run::Launch::FiringTaken => None,
            },
        )
    }

    /// [`ReconError::ConnectorDisabled`] when the connector `mapping` reads or writes is.
    async fn check_enabled(&self, mapping: &str) -> Result<(), ReconError> {
        let (_, client) = self.inner.mapping(mapping)?;
        match client.enabled().await {
            true => Ok(()),
            false => Err(ReconError::ConnectorDisabled(
                client.system_name().to_owned(),
            )),
        }
    }

    /// The connectors runs read and write.
    pub fn connectors(&self) -> &Connectors {
        &self.inner.connectors
    }

    /// Starts a run and waits for its end; returns its summary.
    pub async fn run(&self, request: ReconRequest) -> Result<Value, ReconError> {
        let started = self.start(request).await?;
        let id = started.id.clone();
        // A panic in the run task leaves its row ACTIVE with a free lock: `get` reaps it.
        let _ = started.task.await;
        self.get(&id).await
    }

    /// The summary of a run, in IDM's shape (dead runs are marked FAILED first).
    pub async fn get(&self, id: &str) -> Result<Value, ReconError> {
        recon_runs::reap_dead(&self.inner.pool).await?;
        let row = recon_runs::get(&self.inner.pool, id)
            .await?
            .ok_or_else(|| ReconError::NotFound(id.to_owned()))?;
        Ok(summary::render(&row))
    }

    /// The latest runs, newest first.
    pub async fn list(&self, limit: i64) -> Result<Vec<Value>, ReconError> {
        recon_runs::reap_dead(&self.inner.pool).await?;
        Ok(recon_runs::list(&self.inner.pool, limit)
            .await?
            .iter()
            .map(summary::render)
            .collect())
    }

    /// Asks a run to stop at its next page boundary (state CANCELED). IDM 7's answer:
    /// `{"_id", "action": "cancel", "status": "INITIATED"}`; a run already finished answers
    /// `"status": "SUCCESS"` and is left as it was.
    pub async fn cancel(&self, id: &str) -> Result<Value, ReconError> {
        recon_runs::reap_dead(&self.inner.pool).await?;
        let state = recon_runs::request_cancel(&self.inner.pool, id)
            .await?
            .ok_or_else(|| ReconError::NotFound(id.to_owned()))?;
        let status = if state == "ACTIVE" {
            "INITIATED"
        } else {
            "SUCCESS"
        };
        Ok(json!({"_id": id, "action": "cancel", "status": status}))
    }

    /// `DELETE /openidm/recon/{id}`: purges a finished run's summary (its audit entries stay,
    /// as IDM's do) and answers with the summary it purged.
    pub async fn delete(&self, id: &str) -> Result<Value, ReconError> {
        recon_runs::reap_dead(&self.inner.pool).await?;
        match recon_runs::delete_finished(&self.inner.pool, id).await? {
            None => Err(ReconError::NotFound(id.to_owned())),
            Some((_, false)) => Err(ReconError::StillActive(id.to_owned())),
            Some((row, true)) => {
                recon_runs::clear_scratch(&self.inner.pool, id).await?;
                Ok(summary::render(&row))
            }
        }
    }

    /// Marks FAILED the runs whose process died (called at start-up, and before every read).
    pub async fn reap_dead(&self) -> Result<u64, ReconError> {
        Ok(repo::recon_runs::reap_dead(&self.inner.pool).await?)
    }
}

impl Inner {
    /// The mapping a run of `name` reconciles, from a connector's users into managed users
    /// (inbound) or from managed users into a connector's users (outbound), and that connector.
    pub(crate) fn mapping(&self, name: &str) -> Result<(&Mapping, &SalesforceClient), ReconError> {
        let mapping = self
            .sync
            .mapping(name)
            .ok_or_else(|| ReconError::UnknownMapping(name.to_owned()))?;
        let inbound = mapping.target == TARGET_RESOURCE;
        let system_side = match inbound {
            true => &mapping.source,
            false => &mapping.target,
        };
        let client = match Resource::parse(system_side) {
            Some(Resource::System { name, object_type })
                if object_type == SOURCE_OBJECT_TYPE
                    && (inbound || mapping.source == TARGET_RESOURCE) =>
            {
                self.connectors.get(name)
            }
            _ => None,
        };
        let Some(client) = client else {
            return Err(ReconError::BadRequest(format!(
                "Mapping {name} maps {} to {}: idm-sync reconciles the {SOURCE_OBJECT_TYPE} objects of a configured system and {TARGET_RESOURCE} into each other only",
                mapping.source, mapping.target
            )));
        };
        if inbound && mapping.links_reversed() {
            return Err(ReconError::BadRequest(format!(
                "Mapping {name} reuses the links of {}: reconcile that mapping instead",
                mapping.link_type()
            )));
        }
        Ok((mapping, client))
    }
}
