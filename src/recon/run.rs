//! One run's lifecycle: checks, the mapping's lock, the run's row, the direction's phases
//! under a heartbeat, the final state.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::inbound::{self, Inbound};
use super::outbound::{self, Outbound};
use super::run_state::{Run, RunOutcome};
use super::summary::{Stage, Stats};
use super::{Inner, ReconError, ReconRequest, StartedRun};
use crate::repo::recon_runs::LockConnection;
use crate::repo::schedule_firings::{self, Firing};
use crate::repo::{Pool, recon_runs, transaction};

/// The phases of a run, by the direction of its mapping.
pub(crate) enum Phases {
    /// From Salesforce into managed objects.
    Inbound(Inbound),
    /// From managed objects into Salesforce.
    Outbound(Outbound),
}

impl Phases {
    fn run(&mut self) -> &mut Run {
        match self {
            Phases::Inbound(p) => &mut p.run,
            Phases::Outbound(p) => &mut p.run,
        }
    }

    async fn execute(&mut self) -> Result<RunOutcome, ReconError> {
        match self {
            Phases::Inbound(p) => p.phases().await,
            Phases::Outbound(p) => p.phases().await,
        }
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
    let (mapping, client) = inner.mapping(&req.mapping)?;
    let client = client.clone();
    let mapping_index = inner
        .sync
        .mappings
        .iter()
        .position(|m| m.name == mapping.name)
        .ok_or_else(|| ReconError::UnknownMapping(req.mapping.clone()))?;
    let prepared = if mapping.source == super::TARGET_RESOURCE {
        Prepared::Outbound(Outbound::prepare(mapping, &req)?)
    } else {
        Prepared::Inbound(Inbound::prepare(mapping, &req)?)
    };
    let parameters = prepared.parameters(&req);

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
    let run = Run {
        inner,
        client,
        id: id.clone(),
        req,
        mapping_index,
        stats: Stats::default(),
        stage: Stage::Initialized,
    };
    let phases = prepared.into_phases(run);
    let task = tokio::spawn(execute(phases, lock));
    Ok(Launch::Started(StartedRun { id, task }))
}

/// A run ready to start: what its direction prepared from the request.
enum Prepared {
    Inbound(inbound::Prepared),
    Outbound(outbound::Prepared),
}

impl Prepared {
    /// The run's `parameters`, as its summary shows them.
    fn parameters(&self, req: &ReconRequest) -> Value {
        let mut parameters = match self {
            Prepared::Inbound(p) => p.parameters(),
            Prepared::Outbound(p) => p.parameters(),
        };
        if let Some(map) = parameters.as_object_mut() {
            map.insert("analyze".into(), Value::from(req.analyze));
            map.insert("allowMassChange".into(), Value::from(req.allow_mass_change));
            map.insert("sourceId".into(), json!(req.source_id));
        }
        parameters
    }

    fn into_phases(self, run: Run) -> Phases {
        match self {
            Prepared::Inbound(p) => Phases::Inbound(Inbound::new(run, p)),
            Prepared::Outbound(p) => Phases::Outbound(Outbound::new(run, p)),
        }
    }
}

async fn execute(mut phases: Phases, mut lock: LockConnection) -> RunOutcome {
    let ctx = phases.run();
    let pool = ctx.pool().clone();
    let id = ctx.id.clone();
    let interval = ctx.inner.settings.heartbeat_interval;
    let started = Instant::now();
    let outcome = tokio::select! {
        result = phases.execute() => match result {
            Ok(outcome) => outcome,
            Err(e) => RunOutcome::Failed(crate::telemetry::error_chain(&e).to_string()),
        },
        never = heartbeat(&pool, &id, interval) => match never {},
    };
    let ctx = phases.run();
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
    ctx.inner.metrics.recon_finished(
        ctx.client.system_name(),
        &ctx.req.mapping,
        state,
        started.elapsed(),
    );
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

/// Refreshes the run's heartbeat while a page takes long (operators see a stuck run).
async fn heartbeat(pool: &Pool, id: &str, interval: Duration) -> Infallible {
    loop {
        tokio::time::sleep(interval).await;
        let _ = recon_runs::heartbeat(pool, id).await;
    }
}
