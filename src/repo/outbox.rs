//! The transactional outbox: one row per real change of a managed object, written in the
//! transaction of the change; the relay claims unpublished rows and marks them published.
//! A row is a reference (object, revision, operation, the top-level fields changed), never a
//! body: the worker reads the object as it is now. A row may name the outbound mapping it is
//! meant for (`mapping`): the relay then publishes it to that mapping's lane only.

use chrono::{DateTime, Utc};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgExecutor, PgPool};

use super::RepoError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    /// A re-enqueue (triggerSyncCheck, a retried sync failure): no change of its own; the
    /// worker pushes the object's current state in full.
    Sync,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Sync => "sync",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        match s {
            "create" => Some(Operation::Create),
            "update" => Some(Operation::Update),
            "delete" => Some(Operation::Delete),
            "sync" => Some(Operation::Sync),
            _ => None,
        }
    }
}

/// A change to record, borrowed from the write that makes it.
#[derive(Debug)]
pub struct NewChange<'a> {
    pub object_type: &'a str,
    pub object_id: &'a str,
    pub rev: i64,
    pub operation: Operation,
    /// The top-level fields the change set, changed or removed.
    pub changed: Vec<&'a str>,
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub object_type: String,
    pub object_id: String,
    pub rev: i64,
    pub operation: Operation,
    /// The top-level fields the change set; for `sync`, the target fields a reconciliation
    /// found to differ (none: every mapped value).
    pub fields: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// The outbound mapping the row is meant for; `None`: every one.
    pub mapping: Option<String>,
}

/// Records a change; call it inside the transaction that makes the change.
pub async fn record(tx: &mut PgConnection, change: &NewChange<'_>) -> Result<i64, RepoError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (object_type, object_id, rev, operation, changed_fields)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
    )
    .bind(change.object_type)
    .bind(change.object_id)
    .bind(change.rev)
    .bind(change.operation.as_str())
    .bind(&change.changed)
    .fetch_one(&mut *tx)
    .await?;
    Ok(id)
}

/// Records several changes in one statement, in the order given (ids ascend with it);
/// call it inside the transaction that makes the changes.
pub async fn record_many(
    tx: &mut PgConnection,
    changes: &[NewChange<'_>],
) -> Result<(), RepoError> {
    if changes.is_empty() {
        return Ok(());
    }
    let types: Vec<&str> = changes.iter().map(|c| c.object_type).collect();
    let ids: Vec<&str> = changes.iter().map(|c| c.object_id).collect();
    let revs: Vec<i64> = changes.iter().map(|c| c.rev).collect();
    let operations: Vec<&str> = changes.iter().map(|c| c.operation.as_str()).collect();
    // Postgres has no arrays of arrays of varying length: each row's names travel as one
    // text, split back in SQL (a field name holding a newline is stored as two names, which
    // only an operator reads).
    let changed: Vec<String> = changes.iter().map(|c| c.changed.join("\n")).collect();
    sqlx::query(
        "INSERT INTO outbox (object_type, object_id, rev, operation, changed_fields)
         SELECT u.object_type, u.object_id, u.rev, u.operation,
                CASE WHEN u.changed = '' THEN '{}'::text[] ELSE string_to_array(u.changed, E'\\n') END
         FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[])
              WITH ORDINALITY AS u(object_type, object_id, rev, operation, changed, ord)
         ORDER BY u.ord",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&revs)
    .bind(&operations)
    .bind(&changed)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

type Row = (
    i64,
    String,
    String,
    i64,
    String,
    Vec<String>,
    DateTime<Utc>,
    Option<String>,
);

/// Claims up to `limit` unpublished rows, oldest first, locking them for the caller's
/// transaction. `SKIP LOCKED` lets several relays claim side by side without ever taking
/// the same row; a claimer that dies releases its rows with its transaction. Rows deferred
/// ([`defer`]) are left until their time comes.
pub async fn claim(tx: &mut PgConnection, limit: i64) -> Result<Vec<OutboxRow>, RepoError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, object_type, object_id, rev, operation, changed_fields, created_at, mapping
         FROM outbox
         WHERE published_at IS NULL AND (retry_at IS NULL OR retry_at <= now())
         ORDER BY id
         LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    rows.into_iter()
        .map(
            |(id, object_type, object_id, rev, op, fields, created_at, mapping)| {
                let operation = Operation::parse(&op).ok_or_else(|| {
                    RepoError::Config(format!("outbox row {id} has unknown operation {op:?}"))
                })?;
                Ok(OutboxRow {
                    id,
                    object_type,
                    object_id,
                    rev,
                    operation,
                    fields,
                    created_at,
                    mapping,
                })
            },
        )
        .collect()
}

/// Marks claimed rows as published (inside the claiming transaction).
pub async fn mark_published(tx: &mut PgConnection, ids: &[i64]) -> Result<(), RepoError> {
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Leaves claimed rows unpublished for a while (inside the claiming transaction): rows the
/// broker returned as unroutable. The wait grows with a row's age, from 1 s to 5 min, so a row
/// for a lane no queue serves yet is tried again less and less often, and is published within
/// minutes of its lane being declared. Claims walk over the rows waiting: a few thousand cost
/// milliseconds; they are a misconfiguration's symptom, not a steady state.
pub async fn defer(tx: &mut PgConnection, ids: &[i64]) -> Result<(), RepoError> {
    sqlx::query(
        "UPDATE outbox
         SET retry_at = now() + least(greatest(now() - created_at, interval '1 second'),
                                      interval '5 minutes')
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes published rows older than `retention`; the number deleted.
pub async fn purge_published(pool: &PgPool, retention: Duration) -> Result<u64, RepoError> {
    Ok(sqlx::query(
        "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < now() - make_interval(secs => $1)",
    )
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}

/// Number of rows not yet published (the backlog).
pub async fn backlog<'e>(db: impl PgExecutor<'e>) -> Result<i64, RepoError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(db)
        .await?;
    Ok(n)
}

/// The unpublished rows: how many, and how long the oldest has waited (seconds; `None` when
/// none waits). Counts over the partial index `outbox_unpublished`; the oldest is its first
/// row in id order, which is commit order up to concurrent transactions.
pub async fn backlog_and_oldest<'e>(
    db: impl PgExecutor<'e>,
) -> Result<(i64, Option<f64>), RepoError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL), \
                (SELECT extract(epoch FROM now() - created_at)::float8 FROM outbox \
                  WHERE published_at IS NULL ORDER BY id LIMIT 1)",
    )
    .fetch_one(db)
    .await?)
}

/// Re-enqueues a managed object at its current revision (operation `sync`), in the caller's
/// transaction, for outbound mapping `mapping` (`None`: every one); `false` when nothing was
/// enqueued. An object that no longer exists is enqueued at `fallback_rev` when given (a
/// failed deactivation must be retryable too).
pub async fn enqueue_sync(
    tx: &mut PgConnection,
    object_type: &str,
    object_id: &str,
    fallback_rev: Option<i64>,
    mapping: Option<&str>,
) -> Result<bool, RepoError> {
    let current: Option<i64> =
        sqlx::query_scalar("SELECT rev FROM managed_objects WHERE object_type = $1 AND id = $2")
            .bind(object_type)
            .bind(object_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(rev) = current.or(fallback_rev) else {
        return Ok(false);
    };
    sqlx::query(
        "INSERT INTO outbox (object_type, object_id, rev, operation, mapping)
         VALUES ($1, $2, $3, 'sync', $4)",
    )
    .bind(object_type)
    .bind(object_id)
    .bind(rev)
    .bind(mapping)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Enqueues `sync` rows for `objects` (id, revision, the target fields found to differ) in the
/// caller's transaction, in one statement, for outbound mapping `mapping` (`None`: every one):
/// the outbound reconciliation's writes, which the worker applies as it applies any change
/// (reading the current object), so a user never has two writers.
pub async fn enqueue_sync_many(
    tx: &mut PgConnection,
    object_type: &str,
    objects: &[(String, i64, Vec<String>)],
    mapping: Option<&str>,
) -> Result<u64, RepoError> {
    if objects.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = objects.iter().map(|(id, _, _)| id.as_str()).collect();
    let revs: Vec<i64> = objects.iter().map(|(_, rev, _)| *rev).collect();
    // Field names hold no newline (they are Salesforce field names).
    let fields: Vec<String> = objects.iter().map(|(_, _, f)| f.join("\n")).collect();
    let done = sqlx::query(
        "INSERT INTO outbox (object_type, object_id, rev, operation, changed_fields, mapping)
         SELECT $1, u.id, u.rev, 'sync',
                CASE WHEN u.fields = '' THEN '{}'::text[] ELSE string_to_array(u.fields, E'\\n') END,
                $5
         FROM unnest($2::text[], $3::int8[], $4::text[]) AS u(id, rev, fields)",
    )
    .bind(object_type)
    .bind(&ids)
    .bind(&revs)
    .bind(&fields)
    .bind(mapping)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// Re-enqueues, one `sync` row each, every object of `object_type` not known to be in step
/// under `link_type`: linked objects whose link is behind their current revision (or holds no
/// snapshot), objects with no link yet, and links whose object is gone (a deactivation still
/// owed), for outbound mapping `mapping` (`None`: every one). It repairs what events lost on
/// the broker's side would leave behind; returns how many.
pub async fn enqueue_lagging(
    tx: &mut PgConnection,
    object_type: &str,
    link_type: &str,
    mapping: Option<&str>,
) -> Result<u64, RepoError> {
    let done = sqlx::query(
        "INSERT INTO outbox (object_type, object_id, rev, operation, mapping)
         SELECT object_type, id, rev, 'sync', $3
         FROM (
             SELECT m.object_type, m.id, m.rev
             FROM managed_objects m
             LEFT JOIN links l ON l.link_type = $2 AND l.second_id = m.id
             WHERE m.object_type = $1
               AND (l.id IS NULL OR l.synced_rev IS NULL OR l.synced_rev < m.rev)
             UNION ALL
             SELECT $1, l.second_id, coalesce(l.synced_rev, 0)
             FROM links l
             WHERE l.link_type = $2
               AND NOT EXISTS (SELECT 1 FROM managed_objects m
                               WHERE m.object_type = $1 AND m.id = l.second_id)
         ) behind
         ORDER BY id",
    )
    .bind(object_type)
    .bind(link_type)
    .bind(mapping)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// LISTEN on a connection of its own: what wakes the relay when the outbox trigger notifies.
pub struct Listener(PgListener);

impl Listener {
    /// Connects with the pool's settings and listens on `channel`.
    pub async fn listen(pool: &PgPool, channel: &str) -> Result<Listener, RepoError> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(channel).await?;
        Ok(Listener(listener))
    }

    /// Waits for the next notification: `true` when one arrived, `false` when the connection
    /// was lost (notifications meanwhile are lost too; the next call reconnects and listens
    /// again).
    pub async fn try_recv(&mut self) -> Result<bool, RepoError> {
        Ok(self.0.try_recv().await?.is_some())
    }
}
