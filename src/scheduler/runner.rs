//! Fires the schedules: each replica computes the same firing times, and the one whose insert
//! into `schedule_firings` wins runs the firing, so each firing runs exactly once across
//! replicas. A persisted schedule with `fireAndProceed` that missed a firing while every
//! scheduler was down fires once on start-up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::config::{Invoke, MisfirePolicy, Schedule};

/// What a firing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The job started (for a recon: its run id).
    Started(String),
    /// Not run, e.g. the previous run of that mapping is still active.
    Skipped(String),
}

pub type JobFuture = Pin<Box<dyn Future<Output = Result<JobOutcome, String>> + Send>>;

/// Starts the work a schedule invokes (a recon, a liveSync pass).
pub type JobRunner = Arc<dyn Fn(Invoke) -> JobFuture + Send + Sync>;

/// How far back a missed firing still counts as a misfire to make up.
const MISFIRE_HORIZON: chrono::Duration = chrono::Duration::days(7);

pub struct Scheduler {
    pool: PgPool,
    schedules: Vec<Schedule>,
    runner: JobRunner,
    node: String,
}

impl Scheduler {
    pub fn new(
        pool: PgPool,
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

async fn run_schedule(pool: PgPool, schedule: Schedule, runner: JobRunner, node: String) {
    let now = Utc::now();
    if schedule.persisted && schedule.misfire == MisfirePolicy::FireAndProceed {
        if let Some(missed) = schedule.previous_at_or_before(now, MISFIRE_HORIZON) {
            match last_firing(&pool, &schedule.id).await {
                Ok(last) if last.is_none_or(|l| l < missed) => {
                    tracing::info!(schedule = %schedule.id, %missed, "making up a missed firing");
                    fire(&pool, &schedule, missed, &runner, &node).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(schedule = %schedule.id, error = %e, "cannot read past firings")
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

/// Claims the firing and, if this replica won it, runs the job.
async fn fire(
    pool: &PgPool,
    schedule: &Schedule,
    fire_time: DateTime<Utc>,
    runner: &JobRunner,
    node: &str,
) {
    let claimed = sqlx::query(
        "INSERT INTO schedule_firings (schedule_id, fire_time, node) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(&schedule.id)
    .bind(fire_time)
    .bind(node)
    .execute(pool)
    .await;
    match claimed {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => return, // another replica runs this firing
        Err(e) => {
            // Without the claim we cannot know no one else runs it: skip rather than double-run.
            tracing::warn!(schedule = %schedule.id, error = %e, "cannot claim a firing; skipped");
            return;
        }
    }
    let outcome = match (runner)(schedule.invoke.clone()).await {
        Ok(JobOutcome::Started(id)) => {
            tracing::info!(schedule = %schedule.id, run = %id, "schedule fired");
            format!("started {id}")
        }
        Ok(JobOutcome::Skipped(why)) => {
            tracing::info!(schedule = %schedule.id, reason = %why, "firing skipped");
            format!("skipped: {why}")
        }
        Err(e) => {
            tracing::warn!(schedule = %schedule.id, error = %e, "firing failed");
            format!("failed: {e}")
        }
    };
    if let Err(e) = sqlx::query(
        "UPDATE schedule_firings SET outcome = $3 WHERE schedule_id = $1 AND fire_time = $2",
    )
    .bind(&schedule.id)
    .bind(fire_time)
    .bind(outcome)
    .execute(pool)
    .await
    {
        tracing::warn!(schedule = %schedule.id, error = %e, "cannot record a firing's outcome");
    }
}

async fn last_firing(
    pool: &PgPool,
    schedule_id: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(fire_time) FROM schedule_firings WHERE schedule_id = $1")
        .bind(schedule_id)
        .fetch_one(pool)
        .await
}

/// The last firing of each schedule, for the job listing.
pub async fn previous_runs(pool: &PgPool) -> Result<Vec<(String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as("SELECT schedule_id, max(fire_time) FROM schedule_firings GROUP BY schedule_id")
        .fetch_all(pool)
        .await
}
