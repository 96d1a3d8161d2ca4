//! Fires the schedules: each replica computes the same firing times, and the one whose insert
//! into `schedule_firings` wins runs the firing, so each firing runs exactly once across
//! replicas. A persisted schedule with `fireAndProceed` that missed a firing while every
//! scheduler was down fires once on start-up.
//!
//! # A crash between claim and start
//!
//! A recon firing is claimed in the transaction that takes the mapping's run lock and records
//! the run (`ReconEngine::start_fired`), not before it. A crash before that commit leaves no
//! claim: a replica waiting on the uncommitted claim takes the firing over, and a persisted
//! `fireAndProceed` schedule makes it up at the next start (the misfire check sees no row).
//! A crash after the commit leaves an ACTIVE run whose lock died with its connection, which
//! the dead-run reaping marks FAILED where everyone can see it. We chose this over a lease
//! (re-run a claim not confirmed in time) because a lease can re-run a job that did start
//! but was slow to confirm; the transaction leaves no such window and needs no timer.
//!
//! A liveSync firing has no start record: it is claimed just before its pass. A crash in
//! between loses that pass, but liveSync's progress is its token, which moves only after a
//! successful pass, so the next firing polls the same window and no change is lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::config::{Invoke, MisfirePolicy, Schedule};
use crate::repo::schedule_firings::{self, Firing};
use crate::repo::{Pool, RepoError};

/// What a firing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The job started (for a recon: its run id).
    Started(String),
    /// Not run, e.g. the previous run of that mapping is still active.
    Skipped(String),
    /// Another replica claimed the firing: nothing done here.
    Taken,
}

/// Why a firing failed (recorded with the firing as `failed: <the error and its causes>`).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0} is not configured (conf/ needs sync.json and the Salesforce provisioner)")]
    NotConfigured(String),
    #[error("cannot claim the firing")]
    Claim(#[from] RepoError),
    #[error(transparent)]
    Recon(#[from] crate::recon::ReconError),
    #[error(transparent)]
    LiveSync(#[from] crate::recon::LiveSyncError),
}

pub type JobFuture = Pin<Box<dyn Future<Output = Result<JobOutcome, JobError>> + Send>>;

/// Starts the work a schedule invokes (a recon, a liveSync pass) for one firing.
///
/// The job claims the firing itself: in the transaction that records its start where it has
/// such a record (a recon's run row: [`crate::recon::ReconEngine::start_fired`]), else with
/// [`Claim::take`] before it starts. It returns [`JobOutcome::Taken`] when another replica
/// won the claim, and anything else only once the firing is claimed (or claiming it failed:
/// then there is no row to record the error in).
pub type JobRunner = Arc<dyn Fn(Invoke, Claim) -> JobFuture + Send + Sync>;

/// A firing due on this replica, not yet claimed.
#[derive(Debug, Clone)]
pub struct Claim {
    pool: Pool,
    firing: Firing,
}

impl Claim {
    pub fn new(pool: Pool, firing: Firing) -> Claim {
        Claim { pool, firing }
    }

    pub fn firing(&self) -> &Firing {
        &self.firing
    }

    /// Claims the firing for a job with no start record of its own; `false` when another
    /// replica holds it.
    pub async fn take(&self) -> Result<bool, RepoError> {
        schedule_firings::claim(&self.pool, &self.firing).await
    }
}

/// How far back a missed firing still counts as a misfire to make up.
const MISFIRE_HORIZON: chrono::Duration = chrono::Duration::days(7);

pub struct Scheduler {
    pool: Pool,
    schedules: Vec<Schedule>,
    runner: JobRunner,
    node: String,
}

impl Scheduler {
    pub fn new(
        pool: Pool,
        schedules: Vec<Schedule>,
        runner: JobRunner,
        node: impl Into<String>,
    ) -> Scheduler {
        Scheduler {
            pool,
            schedules,
            runner,
            node: node.into(),
        }
    }

    /// Runs every enabled schedule until `shutdown` completes.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) {
        let mut tasks = tokio::task::JoinSet::new();
        for schedule in self.schedules.into_iter().filter(|s| s.enabled) {
            let (pool, runner, node) = (self.pool.clone(), self.runner.clone(), self.node.clone());
            tracing::info!(schedule = %schedule.id, "schedule active");
            tasks.spawn(run_schedule(pool, schedule, runner, node));
        }
        shutdown.await;
        tasks.shutdown().await;
        tracing::info!("scheduler stopped");
    }
}

async fn run_schedule(pool: Pool, schedule: Schedule, runner: JobRunner, node: String) {
    let now = Utc::now();
    if schedule.persisted && schedule.misfire == MisfirePolicy::FireAndProceed {
        if let Some(missed) = schedule.previous_at_or_before(now, MISFIRE_HORIZON) {
            match schedule_firings::last(&pool, &schedule.id).await {
                Ok(last) if last.is_none_or(|l| l < missed) => {
                    tracing::info!(schedule = %schedule.id, %missed, "making up a missed firing");
                    fire(&pool, &schedule, missed, &runner, &node).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(schedule = %schedule.id, error = %crate::telemetry::error_chain(&e), "cannot read past firings")
                }
            }
        }
    }
    let mut after = now;
    while let Some(next) = schedule.next_after(after) {
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        fire(&pool, &schedule, next, &runner, &node).await;
        after = next;
    }
    tracing::info!(schedule = %schedule.id, "schedule ended");
}

/// Hands the firing to the job, which claims it (see [`JobRunner`]), and records the outcome.
async fn fire(
    pool: &Pool,
    schedule: &Schedule,
    fire_time: DateTime<Utc>,
    runner: &JobRunner,
    node: &str,
) {
    let firing = Firing {
        schedule_id: schedule.id.clone(),
        fire_time,
        node: node.to_owned(),
    };
    let claim = Claim::new(pool.clone(), firing.clone());
    let outcome = match (runner)(schedule.invoke.clone(), claim).await {
        Ok(JobOutcome::Taken) => return, // another replica runs this firing
        Ok(JobOutcome::Started(id)) => {
            tracing::info!(schedule = %schedule.id, run = %id, "schedule fired");
            format!("started {id}")
        }
        Ok(JobOutcome::Skipped(why)) => {
            tracing::info!(schedule = %schedule.id, reason = %why, "firing skipped");
            format!("skipped: {why}")
        }
        Err(e) => {
            let e = crate::telemetry::error_chain(&e);
            tracing::warn!(schedule = %schedule.id, error = %e, "firing failed");
            format!("failed: {e}")
        }
    };
    // A failure to claim (the database out of reach) leaves no row: nothing is recorded, and
    // the firing stays free for a replica that can claim it.
    if let Err(e) = schedule_firings::set_outcome(pool, &firing, &outcome).await {
        tracing::warn!(schedule = %schedule.id, error = %crate::telemetry::error_chain(&e), "cannot record a firing's outcome");
    }
}
