//! Change event subscriptions (table `event_subscriptions`): per connector, the lease one
//! subscriber holds across replicas, the replay id to resume from, and a status for people.
//! Every write after the claim is fenced by the holder: a subscriber that lost its lease (a
//! pause longer than the lease) cannot move the replay id under the one that took over.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::RepoError;

/// What a subscriber needs to start after claiming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Where to resume; `None` before the first event or keepalive was recorded.
    pub replay_id: Option<Vec<u8>>,
}

/// A connector's row, for its status page.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub connector: String,
    pub topic: String,
    pub holder: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub has_replay_id: bool,
    pub last_commit_at: Option<DateTime<Utc>>,
    pub last_applied_at: Option<DateTime<Utc>>,
    pub state: String,
    pub message: String,
    pub updated_at: DateTime<Utc>,
}

/// Where a subscription resumes: the replay id of the last event applied and its commit time
/// (`None` for a keepalive's position). Recon stores it in the transaction of the writes the
/// events caused (see `ReconRequest::position`), so the writes and the position commit or roll
/// back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub connector: String,
    pub holder: String,
    pub replay_id: Vec<u8>,
    pub last_commit_at: Option<DateTime<Utc>>,
}

impl Position {
    /// Stores it, fenced by the holder; false when the lease is no longer the holder's.
    pub async fn store(&self, db: impl PgExecutor<'_>) -> Result<bool, RepoError> {
        let done = sqlx::query(
            "UPDATE event_subscriptions SET replay_id = $3, \
               last_commit_at = COALESCE($4, last_commit_at), \
               last_applied_at = CASE WHEN $4 IS NULL THEN last_applied_at ELSE now() END, \
               updated_at = now() \
             WHERE connector = $1 AND holder = $2",
        )
        .bind(&self.connector)
        .bind(&self.holder)
        .bind(&self.replay_id)
        .bind(self.last_commit_at)
        .execute(db)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Takes (or renews) the lease of `connector` for `holder` when it is free, expired or
/// already `holder`'s.
pub async fn claim(
    db: impl PgExecutor<'_>,
    connector: &str,
    topic: &str,
    holder: &str,
    ttl_secs: f64,
) -> Result<Option<Claimed>, RepoError> {
    let row: Option<(Option<Vec<u8>>,)> = sqlx::query_as(
        "INSERT INTO event_subscriptions AS s (connector, topic, holder, lease_expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
         ON CONFLICT (connector) DO UPDATE \
           SET holder = EXCLUDED.holder, lease_expires_at = EXCLUDED.lease_expires_at, \
               topic = EXCLUDED.topic, updated_at = now() \
           WHERE s.holder IS NULL OR s.holder = EXCLUDED.holder OR s.lease_expires_at < now() \
         RETURNING replay_id",
    )
    .bind(connector)
    .bind(topic)
    .bind(holder)
    .bind(ttl_secs)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(replay_id,)| Claimed { replay_id }))
}

/// Extends `holder`'s lease; false when it is no longer `holder`'s.
pub async fn renew(
    db: impl PgExecutor<'_>,
    connector: &str,
    holder: &str,
    ttl_secs: f64,
) -> Result<bool, RepoError> {
    let done = sqlx::query(
        "UPDATE event_subscriptions SET lease_expires_at = now() + make_interval(secs => $3) \
         WHERE connector = $1 AND holder = $2",
    )
    .bind(connector)
    .bind(holder)
    .bind(ttl_secs)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets the replay id (it is no longer retained): the next subscription starts from the
/// latest event.
pub async fn forget_replay_id(
    db: impl PgExecutor<'_>,
    connector: &str,
    holder: &str,
) -> Result<bool, RepoError> {
    let done = sqlx::query(
        "UPDATE event_subscriptions SET replay_id = NULL, updated_at = now() \
         WHERE connector = $1 AND holder = $2",
    )
    .bind(connector)
    .bind(holder)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The state people read (`SUBSCRIBED`, `RECONNECTING`, ...) and why.
pub async fn set_state(
    db: impl PgExecutor<'_>,
    connector: &str,
    holder: &str,
    state: &str,
    message: &str,
) -> Result<(), RepoError> {
    sqlx::query(
        "UPDATE event_subscriptions SET state = $3, message = $4, updated_at = now() \
         WHERE connector = $1 AND holder = $2",
    )
    .bind(connector)
    .bind(holder)
    .bind(state)
    .bind(message)
    .execute(db)
    .await?;
    Ok(())
}

/// Gives the lease up at once (graceful shutdown): a standby need not wait for it to run out.
pub async fn release(
    db: impl PgExecutor<'_>,
    connector: &str,
    holder: &str,
) -> Result<(), RepoError> {
    sqlx::query(
        "UPDATE event_subscriptions SET holder = NULL, lease_expires_at = NULL, \
           state = 'STOPPED', message = '', updated_at = now() \
         WHERE connector = $1 AND holder = $2",
    )
    .bind(connector)
    .bind(holder)
    .execute(db)
    .await?;
    Ok(())
}

type Row = (
    String,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    bool,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    String,
    String,
    DateTime<Utc>,
);

/// One connector's row, if it ever subscribed.
pub async fn get(
    db: impl PgExecutor<'_>,
    connector: &str,
) -> Result<Option<Subscription>, RepoError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT connector, topic, holder, lease_expires_at, replay_id IS NOT NULL, \
                last_commit_at, last_applied_at, state, message, updated_at \
         FROM event_subscriptions WHERE connector = $1",
    )
    .bind(connector)
    .fetch_optional(db)
    .await?;
    Ok(row.map(subscription))
}

fn subscription(r: Row) -> Subscription {
    Subscription {
        connector: r.0,
        topic: r.1,
        holder: r.2,
        lease_expires_at: r.3,
        has_replay_id: r.4,
        last_commit_at: r.5,
        last_applied_at: r.6,
        state: r.7,
        message: r.8,
        updated_at: r.9,
    }
}
