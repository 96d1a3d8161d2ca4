//! Sync failures: changes the outbound worker could not apply (a permanent Salesforce error,
//! or transient errors past the retry bound). One row per mapping and object, updated on each
//! further failed attempt, deleted when a later sync of the object succeeds. Operators see them
//! at `GET /openidm/sync/failures` and retry them over REST, which re-enqueues the object
//! through the outbox in the same transaction (nothing is ever dropped silently).

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::{PgConnection, PgExecutor};

use super::RepoError;
use super::outbox;
use super::relation_query::{self, Row};
use crate::filter::Filter;

/// A failure to record.
#[derive(Debug, Clone)]
pub struct NewFailure<'a> {
    pub mapping: &'a str,
    pub object_type: &'a str,
    pub object_id: &'a str,
    pub object_rev: i64,
    pub target_id: Option<&'a str>,
    pub situation: &'a str,
    pub action: &'a str,
    pub error_code: Option<&'a str>,
    pub message: &'a str,
    /// Attempts this time (added to those already recorded).
    pub attempts: i32,
}

/// Records failures (insert, or update the object's existing row: attempts add up, the first
/// time stays).
pub async fn record(tx: &mut PgConnection, failures: &[NewFailure<'_>]) -> Result<(), RepoError> {
    for f in failures {
        sqlx::query(
            "INSERT INTO sync_failures (id, mapping, object_type, object_id, object_rev, target_id,
                                        situation, action, error_code, message, attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (mapping, object_type, object_id) DO UPDATE SET
                 object_rev = EXCLUDED.object_rev, target_id = EXCLUDED.target_id,
                 situation = EXCLUDED.situation, action = EXCLUDED.action,
                 error_code = EXCLUDED.error_code, message = EXCLUDED.message,
                 attempts = sync_failures.attempts + EXCLUDED.attempts,
                 last_failed = now(), rev = sync_failures.rev + 1",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(f.mapping)
        .bind(f.object_type)
        .bind(f.object_id)
        .bind(f.object_rev)
        .bind(f.target_id)
        .bind(f.situation)
        .bind(f.action)
        .bind(f.error_code)
        .bind(f.message)
        .bind(f.attempts)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Clears the failures of objects now in step up to `rev` (a later sync succeeded, or was
/// found already done). Failures of a later revision stay.
pub async fn clear<'e>(
    db: impl PgExecutor<'e>,
    mapping: &str,
    object_type: &str,
    cleared: &[(String, i64)],
) -> Result<u64, RepoError> {
    if cleared.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = cleared.iter().map(|(id, _)| id.as_str()).collect();
    let revs: Vec<i64> = cleared.iter().map(|(_, rev)| *rev).collect();
    let done = sqlx::query(
        "DELETE FROM sync_failures f USING unnest($3::text[], $4::int8[]) AS u(id, rev)
         WHERE f.mapping = $1 AND f.object_type = $2 AND f.object_id = u.id AND f.object_rev <= u.rev",
    )
    .bind(mapping)
    .bind(object_type)
    .bind(&ids)
    .bind(&revs)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Re-enqueues the object of one failure (an outbox row for its current revision, in this
/// transaction). `false`: no such failure.
pub async fn retry(tx: &mut PgConnection, id: &str) -> Result<bool, RepoError> {
    let row: Option<(String, String, String, i64)> = sqlx::query_as(
        "SELECT mapping, object_type, object_id, object_rev FROM sync_failures
         WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((mapping, object_type, object_id, rev)) = row else {
        return Ok(false);
    };
    // The failed mapping's lane only: the other orgs are not behind on this object.
    outbox::enqueue_sync(tx, &object_type, &object_id, Some(rev), Some(&mapping)).await?;
    Ok(true)
}

/// Re-enqueues the objects of every failure; returns how many.
pub async fn retry_all(tx: &mut PgConnection) -> Result<u64, RepoError> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM sync_failures ORDER BY id FOR UPDATE")
            .fetch_all(&mut *tx)
            .await?;
    let mut n = 0;
    for id in ids {
        if retry(tx, &id).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// The failures as `sync/failures` shows them, filtered with IDM's query filter, in id order.
pub async fn query<'e>(
    db: impl PgExecutor<'e>,
    filter: &Filter,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Row>, RepoError> {
    relation_query::query(
        db,
        "(SELECT id, rev, jsonb_build_object(
                 'mapping', mapping, 'objectType', object_type, 'objectId', object_id,
                 'sourceObjectId', object_type || '/' || object_id,
                 'targetObjectId', target_id, 'revision', object_rev,
                 'situation', situation, 'action', action,
                 'errorCode', error_code, 'message', message, 'attempts', attempts,
                 'firstFailed', to_char(first_failed AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                 'lastFailed', to_char(last_failed AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
             ) AS body FROM sync_failures) AS failure",
        filter,
        after_id,
        limit,
    )
    .await
}

/// Number of open failures.
pub async fn count<'e>(db: impl PgExecutor<'e>) -> Result<i64, RepoError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_failures")
        .fetch_one(db)
        .await?;
    Ok(n)
}

/// A failure as the Admin UI shows it, with the user's name (its id when the user is gone).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListedFailure {
    pub id: String,
    pub object_id: String,
    pub user_name: String,
    pub object_rev: i64,
    pub error_code: Option<String>,
    pub message: String,
    pub attempts: i32,
    pub last_failed: DateTime<Utc>,
}

/// The columns of a [`ListedFailure`], `f` the failure and `m` its managed object.
const LISTED: &str = "SELECT f.id, f.object_id, coalesce(m.body->>'userName', f.object_id) AS user_name, \
    f.object_rev, f.error_code, f.message, f.attempts, f.last_failed \
    FROM sync_failures f \
    LEFT JOIN managed_objects m ON m.object_type = f.object_type AND m.id = f.object_id";

/// The newest `limit` failures, newest first.
pub async fn recent<'e>(
    db: impl PgExecutor<'e>,
    limit: i64,
) -> Result<Vec<ListedFailure>, RepoError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{LISTED} ORDER BY f.last_failed DESC, f.id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// The newest failure of object `object_type`/`object_id`, if it has one.
pub async fn latest_of<'e>(
    db: impl PgExecutor<'e>,
    object_type: &str,
    object_id: &str,
) -> Result<Option<ListedFailure>, RepoError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{LISTED} WHERE f.object_type = $1 AND f.object_id = $2 ORDER BY f.last_failed DESC LIMIT 1"
    )))
    .bind(object_type)
    .bind(object_id)
    .fetch_optional(db)
    .await?)
}
