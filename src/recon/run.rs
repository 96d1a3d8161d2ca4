//! One run's lifecycle: checks, the mapping's lock, the run's row, stages and progress, the
//! heartbeat, cancel at page boundaries, the final state.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::seen::SeenTargets;
use super::summary::{Stage, Stats, Timed};
use super::{Inner, ReconError, ReconRequest, StartedRun, TARGET_TYPE, guard, soql};
use crate::filter::Filter;
use crate::mapping::Mapping;
use crate::repo::recon_runs::LockConnection;
use crate::repo::schedule_firings::{self, Firing};
use crate::repo::{Pool, links, recon_runs, transaction};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Success,
    Canceled,
    Failed(String),
}

/// Whether to go on after a page boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Go,
    Cancel,
}

/// A run in progress: what it does, and its counters.
pub(crate) struct Ctx {
    pub inner: Arc<Inner>,
    pub id: String,
    pub req: ReconRequest,
    pub mapping_index: usize,
    pub soql: String,
    pub target_filter: Filter,
    pub run_target_phase: bool,
    pub stats: Stats,
    pub stage: Stage,
    /// Run correlation queries (false when the target set was empty at the start and
    /// `correlateEmptyTargetSet` is false, as in IDM).
    pub correlate: bool,
    /// Managed objects when the run started (the guard's denominator).
    pub existing_targets: u64,
    /// Sequence of held-back deletes (numbers may be skipped).
    pub pending_seq: i64,
    /// Held-back deletes and deactivations so far (the guard's numerator).
    pub held: u64,
    /// Objects created by this run at which to refresh the planner's statistics next.
    pub next_analyze: u64,
    /// The targets the source phase touched.
    pub seen: SeenTargets,
}

impl Ctx {
    // `mapping_index` was found in this very configuration when the run started, and the
    // engine's configuration never changes: the index cannot miss.
    #[allow(clippy::indexing_slicing)]
    pub fn mapping(&self) -> &Mapping {
        &self.inner.sync.mappings[self.mapping_index]
    }

    /// The mapping, borrowed from a clone of the engine (so `self` stays free to mutate).
    #[allow(clippy::indexing_slicing)] // as in `mapping`
    pub fn mapping_of<'a>(&self, inner: &'a Inner) -> &'a Mapping {
        &inner.sync.mappings[self.mapping_index]
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Records progress and a heartbeat; reads the cancel flag.
    pub async fn checkpoint(&mut self) -> Result<Flow, ReconError> {
        let cancel = recon_runs::progress(
            self.pool(),
            &self.id,
            self.stage.pair(),
            &self.stats.to_json(),
        )
        .await?;
        Ok(if cancel { Flow::Cancel } else { Flow::Go })
    }

    async fn enter(&mut self, stage: Stage) -> Result<Flow, ReconError> {
        self.stage = stage;
        self.checkpoint().await
    }

    async fn phases(&mut self) -> Result<RunOutcome, ReconError> {
        if self.enter(Stage::QueryEntries).await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        let t = Instant::now();
        let existing =
            recon_runs::count_targets(self.pool(), TARGET_TYPE, &self.target_filter).await?;
        self.stats.time(Timed::TargetQuery, t.elapsed());
        self.existing_targets = u64::try_from(existing).unwrap_or(0);
        self.stats.target_total = Some(self.existing_targets);
        let link_total = links::count(self.pool(), self.mapping().link_type()).await?;
        self.stats.links_total = Some(u64::try_from(link_total).unwrap_or(0));
        self.correlate = self.mapping().has_correlation()
            && (self.existing_targets > 0 || self.mapping().correlate_empty_target_set);

        if self.enter(Stage::ReconcilingSource).await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        let t = Instant::now();
        let flow = self.source_phase().await?;
        self.stats.time(Timed::SourcePhase, t.elapsed());
        if flow == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        if let Some(source_id) = self.req.source_id.clone()
            && self.stats.source_processed == 0
            && let Err(reason) = self.vanished_source(&source_id).await?
        {
            return Ok(RunOutcome::Failed(reason));
        }
        if self.stats.source_processed == 0
            && self.req.source_id.is_none()
            && !self.mapping().allow_empty_source_set
        {
            return Ok(RunOutcome::Failed(
                "Cannot reconcile from an empty data source, unless allowEmptySourceSet is true."
                    .into(),
            ));
        }

        if self.run_target_phase {
            if self.enter(Stage::ReconcilingTarget).await? == Flow::Cancel {
                return Ok(RunOutcome::Canceled);
            }
            let t = Instant::now();
            let flow = self.target_phase().await?;
            self.stats.time(Timed::TargetPhase, t.elapsed());
            if flow == Flow::Cancel {
                return Ok(RunOutcome::Canceled);
            }
        }

        if self.enter(Stage::ApplyingDeletes).await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        let planned = self.held;
        let one_object = self.req.source_id.is_some();
        if let Err(reason) = guard::check(
            planned,
            self.existing_targets,
            self.inner.settings.max_delete_share,
            self.req.allow_mass_change || one_object || self.req.analyze,
        ) {
            return Ok(RunOutcome::Failed(reason.to_string()));
        }
        if self.apply_pending_deletes().await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        Ok(RunOutcome::Success)
    }
}

/// Creates after which a run first refreshes the statistics (about one page); then each time
/// they double.
const FIRST_ANALYZE: u64 = 1_000;

impl Ctx {
    /// A run filling an empty repository makes the tables it reads many times larger than
    /// their statistics say; with autovacuum slow or off, the planner then picks scans for
    /// look-ups a page at a time. Refreshing them as the run doubles the data costs a few
    /// sampled ANALYZEs per run and keeps every page's queries on their indexes.
    pub(crate) async fn refresh_statistics(&mut self) -> Result<(), ReconError> {
        if self.req.analyze || self.stats.created < self.next_analyze {
            return Ok(());
        }
        self.next_analyze = self.stats.created.saturating_mul(2);
        // Only an optimisation: a role not allowed to ANALYZE runs on with older statistics.
        if let Err(e) = recon_runs::refresh_statistics(self.pool()).await {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot refresh the planner's statistics");
        }
        Ok(())
    }
}

static RUN_SEQ: AtomicU64 = AtomicU64::new(0);

/// IDM 7's recon id style: a UUID and a sequence number.
fn new_run_id() -> String {
    format!(
        "{}-{}",
        uuid::Uuid::new_v4(),
        RUN_SEQ.fetch_add(1, Ordering::Relaxed) + 1
    )
}

/// What [`start`] did.
pub(crate) enum Launch {
    Started(StartedRun),
    /// Another replica claimed the firing first.
    FiringTaken,
}

/// Checks the request, then, in one transaction on the run's own connection: claims `firing`
/// (when a schedule fired the run), takes the mapping's lock and records the run as ACTIVE.
/// So a claimed firing always has its run recorded (or its skip: the lock was taken), and a
/// crash before the commit leaves the firing unclaimed. A replica claiming the same firing
/// waits on this transaction and sees the outcome once it commits or rolls back.
pub(crate) async fn start(
    inner: Arc<Inner>,
    req: ReconRequest,
    firing: Option<&Firing>,
) -> Result<Launch, ReconError> {
    let mapping = inner.mapping(&req.mapping)?;
    let mapping_index = inner
        .sync
        .mappings
        .iter()
        .position(|m| m.name == mapping.name)
        .ok_or_else(|| ReconError::UnknownMapping(req.mapping.clone()))?;
    let source_query = req.source_query.as_ref().or(mapping.source_query.as_ref());
    let soql = soql::build(mapping, source_query, req.source_id.as_deref())
        .map_err(|e| ReconError::BadRequest(format!("sourceQuery: {e}")))?;
    let target_query = req.target_query.as_ref().or(mapping.target_query.as_ref());
    let target_filter = soql::query_filter(target_query)
        .map_err(|e| ReconError::BadRequest(format!("targetQuery: {e}")))?
        .unwrap_or(Filter::True);
    let run_target_phase =
        req.source_id.is_none() && req.run_target_phase.unwrap_or(mapping.run_target_phase);
    let parameters = json!({
        "sourceQuery": {"resourceName": mapping.source, "soql": soql},
        "targetQuery": {
            "resourceName": super::TARGET_RESOURCE,
            "queryFilter": target_query.and_then(|q| q.get("_queryFilter")).cloned().unwrap_or(Value::from("true")),
        },
        "runTargetPhase": run_target_phase,
        "analyze": req.analyze,
        "allowMassChange": req.allow_mass_change,
        "sourceId": req.source_id,
    });

    // The lock lives on a connection of the run's own, outside the pool: if the process (or
    // the run's task) dies, the connection closes and Postgres releases the lock. It is a
    // session lock, so it outlives the transaction below (a rollback does not release it;
    // dropping the connection on an error does).
    let mut lock = LockConnection::open(&inner.pool).await?;
    let mut tx = transaction::begin(&mut lock).await?;
    if let Some(firing) = firing
        && !schedule_firings::claim(&mut *tx, firing).await?
    {
        tx.rollback().await?;
        let _ = lock.close().await;
        return Ok(Launch::FiringTaken);
    }
    if !recon_runs::try_lock(&mut tx, &req.mapping).await? {
        // The firing stays claimed, as skipped: the scheduler records why.
        tx.commit().await?;
        let _ = lock.close().await;
        return Err(ReconError::AlreadyRunning(req.mapping.clone()));
    }
    // Holding the lock, any ACTIVE run of this mapping is a dead one.
    recon_runs::fail_active(&mut tx, &req.mapping).await?;
    let id = new_run_id();
    recon_runs::insert(
        &mut *tx,
        &id,
        &req.mapping,
        Stage::Initialized.pair(),
        &Stats::default().to_json(),
        &parameters,
    )
    .await?;
    if let Some(firing) = firing {
        schedule_firings::set_run(&mut *tx, firing, &id).await?;
    }
    tx.commit().await?;
    tracing::info!(recon_id = %id, mapping = %req.mapping, analyze = req.analyze, "reconciliation started");
    let ctx = Ctx {
        inner: inner.clone(),
        id: id.clone(),
        req,
        mapping_index,
        soql,
        target_filter,
        run_target_phase,
        stats: Stats::default(),
        stage: Stage::Initialized,
        correlate: false,
        existing_targets: 0,
        pending_seq: 0,
        held: 0,
        next_analyze: FIRST_ANALYZE,
        seen: SeenTargets::new(inner.settings.seen_in_memory),
    };
    let task = tokio::spawn(execute(ctx, lock));
    Ok(Launch::Started(StartedRun { id, task }))
}

async fn execute(mut ctx: Ctx, mut lock: LockConnection) -> RunOutcome {
    let pool = ctx.pool().clone();
    let id = ctx.id.clone();
    let interval = ctx.inner.settings.heartbeat_interval;
    let started = Instant::now();
    let outcome = tokio::select! {
        result = ctx.phases() => match result {
            Ok(outcome) => outcome,
            Err(e) => RunOutcome::Failed(crate::telemetry::error_chain(&e).to_string()),
        },
        never = heartbeat(&pool, &id, interval) => match never {},
    };
    let (state, stage, description) = match &outcome {
        RunOutcome::Success => ("SUCCESS", Stage::CompletedSuccess, None),
        RunOutcome::Canceled => ("CANCELED", Stage::CompletedCanceled, None),
        RunOutcome::Failed(reason) => ("FAILED", Stage::CompletedFailed, Some(reason.clone())),
    };
    let description = description.map_or_else(
        || stage.description().to_owned(),
        |reason| format!("{}: {reason}", stage.description()),
    );
    ctx.run_result_script(state);
    ctx.inner
        .metrics
        .recon_finished(&ctx.req.mapping, state, started.elapsed());
    match &outcome {
        RunOutcome::Failed(reason) => {
            tracing::warn!(recon_id = %id, %reason, "reconciliation failed")
        }
        other => tracing::info!(recon_id = %id, outcome = ?other, "reconciliation ended"),
    }
    if let Err(e) = recon_runs::finish(
        &pool,
        &id,
        state,
        (stage.name(), &description),
        &ctx.stats.to_json(),
    )
    .await
    {
        // The row stays ACTIVE; the lock goes with the connection below, so the next reader
        // marks the run FAILED.
        tracing::error!(recon_id = %id, error = %crate::telemetry::error_chain(&e), "cannot record the end of the run");
    }
    if let Err(e) = recon_runs::clear_scratch(&pool, &id).await {
        tracing::warn!(recon_id = %id, error = %crate::telemetry::error_chain(&e), "cannot clear the run's scratch rows");
    }
    let _ = recon_runs::unlock(&mut lock, &ctx.req.mapping).await;
    let _ = lock.close().await;
    outcome
}

impl Ctx {
    /// The mapping's `result` script, once the run has ended (in any state): `source` and
    /// `target` are the phases' progress, `global` the summary with `reconId`, `mapping` and
    /// `state`. What it returns, or why it failed, is kept in the summary (`resultScript`).
    fn run_result_script(&mut self, state: &str) {
        if self.mapping().hooks.result.is_none() {
            return;
        }
        let mut global = self.stats.to_json();
        global.insert("reconId".into(), Value::from(self.id.clone()));
        global.insert("mapping".into(), Value::from(self.req.mapping.clone()));
        global.insert("state".into(), Value::from(state));
        let progress = |side: &str| {
            global
                .get("progress")
                .and_then(|p| p.get(side))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let (source, target) = (progress("source"), progress("target"));
        let outcome = match self
            .mapping()
            .run_result(&source, &target, &Value::Object(global))
        {
            Ok(value) => serde_json::json!({ "value": value }),
            Err(e) => {
                tracing::warn!(recon_id = %self.id, error = %e, "the mapping's result script failed");
                serde_json::json!({ "error": e.to_string() })
            }
        };
        self.stats.result_script = Some(outcome);
    }
}

/// Refreshes the run's heartbeat while a page takes long (operators see a stuck run).
async fn heartbeat(pool: &Pool, id: &str, interval: Duration) -> Infallible {
    loop {
        tokio::time::sleep(interval).await;
        let _ = recon_runs::heartbeat(pool, id).await;
    }
}
