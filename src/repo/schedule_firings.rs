//! Schedule firings: one row per firing, claimed by the replica whose insert wins.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use super::RepoError;

/// One firing of a schedule, as every replica computes it, and the replica firing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub schedule_id: String,
    pub fire_time: DateTime<Utc>,
    pub node: String,
}

/// Claims `firing`; `false` when another replica holds it. Inside a transaction, an insert
/// meeting another transaction's uncommitted claim waits for it: a claim that commits wins, one
/// rolled back (its process died before the job started) lets this one through.
pub async fn claim<'e>(db: impl PgExecutor<'e>, firing: &Firing) -> Result<bool, RepoError> {
    let done = sqlx::query(
        "INSERT INTO schedule_firings (schedule_id, fire_time, node) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(&firing.schedule_id)
    .bind(firing.fire_time)
    .bind(&firing.node)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the run a claimed firing started (in the claim's transaction).
pub async fn set_run<'e>(
    db: impl PgExecutor<'e>,
    firing: &Firing,
    run_id: &str,
) -> Result<(), RepoError> {
    sqlx::query(
        "UPDATE schedule_firings SET run_id = $3 WHERE schedule_id = $1 AND fire_time = $2",
    )
    .bind(&firing.schedule_id)
    .bind(firing.fire_time)
    .bind(run_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Records what a claimed firing did.
pub async fn set_outcome(pool: &PgPool, firing: &Firing, outcome: &str) -> Result<(), RepoError> {
    sqlx::query(
        "UPDATE schedule_firings SET outcome = $3 WHERE schedule_id = $1 AND fire_time = $2",
    )
    .bind(&firing.schedule_id)
    .bind(firing.fire_time)
    .bind(outcome)
    .execute(pool)
    .await?;
    Ok(())
}

/// The latest claimed firing of a schedule.
pub async fn last(pool: &PgPool, schedule_id: &str) -> Result<Option<DateTime<Utc>>, RepoError> {
    Ok(
        sqlx::query_scalar("SELECT max(fire_time) FROM schedule_firings WHERE schedule_id = $1")
            .bind(schedule_id)
            .fetch_one(pool)
            .await?,
    )
}

/// The last firing of each schedule, for the job listing.
pub async fn last_of_each(pool: &PgPool) -> Result<Vec<(String, DateTime<Utc>)>, RepoError> {
    Ok(sqlx::query_as(
        "SELECT schedule_id, max(fire_time) FROM schedule_firings GROUP BY schedule_id",
    )
    .fetch_all(pool)
    .await?)
}
