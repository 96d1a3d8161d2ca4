//! Outbound worker membership (table `outbound_workers`): registration by heartbeat, the live
//! members, deregistration. Membership is per lane (the outbound mapping a worker applies):
//! the workers of one lane divide its partitions among themselves only. Liveness is judged by
//! the database's clock alone, so hosts with skewed clocks still agree on who is alive.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::RepoError;

/// The lease a member holds without a new heartbeat, unless the worker is configured otherwise.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(6);

/// A worker as recorded in the table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct WorkerMember {
    pub worker_id: String,
    /// The outbound mapping whose lane it consumes.
    pub lane: String,
    pub host: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// The partitions it consumes now, ascending.
    pub partitions: Vec<i32>,
}

/// Registers the worker of lane `lane` or renews its lease, and records the partitions it
/// consumes.
pub async fn heartbeat(
    db: impl PgExecutor<'_>,
    worker_id: &str,
    lane: &str,
    host: &str,
    partitions: &[i32],
) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO outbound_workers (worker_id, lane, host, heartbeat_at, partitions)
         VALUES ($1, $2, $3, now(), $4)
         ON CONFLICT (worker_id) DO UPDATE
         SET heartbeat_at = now(), lane = EXCLUDED.lane, host = EXCLUDED.host,
             partitions = EXCLUDED.partitions",
    )
    .bind(worker_id)
    .bind(lane)
    .bind(host)
    .bind(partitions)
    .execute(db)
    .await?;
    Ok(())
}

/// Removes the worker at once (graceful shutdown): peers need not wait for its lease to end.
pub async fn deregister(db: impl PgExecutor<'_>, worker_id: &str) -> Result<(), RepoError> {
    sqlx::query("DELETE FROM outbound_workers WHERE worker_id = $1")
        .bind(worker_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Lane `lane`'s members whose lease ([`DEFAULT_LEASE_TTL`]) has not run out, by id.
pub async fn live(db: impl PgExecutor<'_>, lane: &str) -> Result<Vec<WorkerMember>, RepoError> {
    live_within(db, lane, DEFAULT_LEASE_TTL).await
}

/// Lane `lane`'s members that heartbeated within `ttl`, by id.
pub async fn live_within(
    db: impl PgExecutor<'_>,
    lane: &str,
    ttl: Duration,
) -> Result<Vec<WorkerMember>, RepoError> {
    Ok(sqlx::query_as(
        "SELECT worker_id, lane, host, started_at, heartbeat_at, partitions FROM outbound_workers
         WHERE lane = $1 AND heartbeat_at > now() - make_interval(secs => $2)
         ORDER BY worker_id",
    )
    .bind(lane)
    .bind(ttl.as_secs_f64())
    .fetch_all(db)
    .await?)
}

/// Every lane's members whose lease ([`DEFAULT_LEASE_TTL`]) has not run out, by lane, then id.
pub async fn live_all(db: impl PgExecutor<'_>) -> Result<Vec<WorkerMember>, RepoError> {
    Ok(sqlx::query_as(
        "SELECT worker_id, lane, host, started_at, heartbeat_at, partitions FROM outbound_workers
         WHERE heartbeat_at > now() - make_interval(secs => $1)
         ORDER BY lane, worker_id",
    )
    .bind(DEFAULT_LEASE_TTL.as_secs_f64())
    .fetch_all(db)
    .await?)
}

/// Deletes the rows of workers silent for longer than `older_than` (they died unannounced);
/// returns how many.
pub async fn reap(db: impl PgExecutor<'_>, older_than: Duration) -> Result<u64, RepoError> {
    let done = sqlx::query(
        "DELETE FROM outbound_workers WHERE heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(older_than.as_secs_f64())
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
