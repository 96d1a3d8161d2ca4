//! Outbound worker membership (table `outbound_workers`): registration by heartbeat, the live
//! members, deregistration. Liveness is judged by the database's clock alone, so hosts with
//! skewed clocks still agree on who is alive.

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
    pub host: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// The partitions it consumes now, ascending.
    pub partitions: Vec<i32>,
}

/// Registers the worker or renews its lease, and records the partitions it consumes.
pub async fn heartbeat(
    db: impl PgExecutor<'_>,
    worker_id: &str,
    host: &str,
    partitions: &[i32],
) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO outbound_workers (worker_id, host, heartbeat_at, partitions)
         VALUES ($1, $2, now(), $3)
         ON CONFLICT (worker_id) DO UPDATE
         SET heartbeat_at = now(), host = EXCLUDED.host, partitions = EXCLUDED.partitions",
    )
    .bind(worker_id)
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

/// The members whose lease ([`DEFAULT_LEASE_TTL`]) has not run out, by id.
pub async fn live(db: impl PgExecutor<'_>) -> Result<Vec<WorkerMember>, RepoError> {
    live_within(db, DEFAULT_LEASE_TTL).await
}

/// The members that heartbeated within `ttl`, by id.
pub async fn live_within(
    db: impl PgExecutor<'_>,
    ttl: Duration,
) -> Result<Vec<WorkerMember>, RepoError> {
    Ok(sqlx::query_as(
        "SELECT worker_id, host, started_at, heartbeat_at, partitions FROM outbound_workers
         WHERE heartbeat_at > now() - make_interval(secs => $1)
         ORDER BY worker_id",
    )
    .bind(ttl.as_secs_f64())
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
