//! Reconciliation runs in Postgres, the per-mapping run lock, and the run-scoped scratch
//! tables (targets seen by the source phase, deletes held back for the mass-change guard).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};

use super::filter_sql::push_filter;
use super::managed::StoredObject;
use super::{Conn, RepoError};
use crate::filter::Filter;

/// The advisory-lock key of a mapping's recon: a 64-bit hash of its name, the same in every
/// replica. Session locks (held by a running recon) and transaction locks (taken to test
/// whether a run is alive) share this key space.
const LOCK_KEY: &str = "hashtextextended('idm-sync recon ' || $1, 0)";

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub mapping: String,
    pub state: String,
    pub stage: String,
    pub stage_description: String,
    /// The counters: `progress`, `situationSummary`, `statusSummary`, `durationSummary`.
    pub summary: Map<String, Value>,
    pub parameters: Value,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    pub heartbeat: DateTime<Utc>,
    pub cancel_requested: bool,
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Json<Map<String, Value>>,
    Json<Value>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    bool,
);

const COLUMNS: &str = "id, mapping, state, stage, stage_description, summary, parameters, started, ended, heartbeat, cancel_requested";

fn from_row(row: Row) -> RunRow {
    let (id, mapping, state, stage, stage_description, summary, parameters) =
        (row.0, row.1, row.2, row.3, row.4, row.5.0, row.6.0);
    RunRow {
        id,
        mapping,
        state,
        stage,
        stage_description,
        summary,
        parameters,
        started: row.7,
        ended: row.8,
        heartbeat: row.9,
        cancel_requested: row.10,
    }
}

/// A connection of a run's own, outside the pool, that holds the mapping's run lock: if the
/// process (or the run's task) dies, the connection closes and Postgres releases the lock.
pub struct LockConnection(PgConnection);

impl LockConnection {
    /// Takes a connection from the pool and detaches it, so it never returns there.
    pub async fn open(pool: &PgPool) -> Result<LockConnection, RepoError> {
        Ok(LockConnection(pool.acquire().await?.detach()))
    }

    /// Closes the connection (releasing any lock still held on it).
    pub async fn close(self) -> Result<(), RepoError> {
        Ok(sqlx::Connection::close(self.0).await?)
    }
}

impl std::ops::Deref for LockConnection {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.0
    }
}

impl std::ops::DerefMut for LockConnection {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.0
    }
}

/// Takes the mapping's run lock on `conn` (a connection of its own, held for the whole run:
/// the lock is released when the run ends or its connection dies with the process). `false`
/// when another run of the mapping, in any replica, holds it.
pub async fn try_lock(conn: &mut PgConnection, mapping: &str) -> Result<bool, RepoError> {
    let sql = format!("SELECT pg_try_advisory_lock({LOCK_KEY})");
    Ok(sqlx::query_scalar(AssertSqlSafe(sql.as_str()))
        .bind(mapping)
        .fetch_one(&mut *conn)
        .await?)
}

pub async fn unlock(conn: &mut PgConnection, mapping: &str) -> Result<(), RepoError> {
    let sql = format!("SELECT pg_advisory_unlock({LOCK_KEY})");
    let _: bool = sqlx::query_scalar(AssertSqlSafe(sql.as_str()))
        .bind(mapping)
        .fetch_one(&mut *conn)
        .await?;
    Ok(())
}

/// Marks FAILED every ACTIVE run whose process is gone. A live run holds its mapping's lock
/// for as long as it is ACTIVE, so an ACTIVE run whose lock is free is dead; the test takes
/// the lock for the length of one transaction. Returns the number of runs marked.
pub async fn reap_dead(pool: &PgPool) -> Result<u64, RepoError> {
    let mappings: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT mapping FROM recon_runs WHERE state = 'ACTIVE'")
            .fetch_all(pool)
            .await?;
    let mut marked = 0;
    for mapping in mappings {
        let mut tx = pool.begin().await?;
        let sql = format!("SELECT pg_try_advisory_xact_lock({LOCK_KEY})");
        let free: bool = sqlx::query_scalar(AssertSqlSafe(sql.as_str()))
            .bind(&mapping)
            .fetch_one(&mut *tx)
            .await?;
        if free {
            marked += fail_active(&mut tx, &mapping).await?;
            clear_scratch_of_finished(&mut tx).await?;
        }
        tx.commit().await?;
    }
    Ok(marked)
}

/// Marks the mapping's ACTIVE runs FAILED; call it only while holding the mapping's lock.
pub async fn fail_active(conn: &mut PgConnection, mapping: &str) -> Result<u64, RepoError> {
    let done = sqlx::query(
        "UPDATE recon_runs SET state = 'FAILED', stage = 'COMPLETED_FAILED',
                stage_description = 'reconciliation failed: the process running it stopped',
                ended = COALESCE(ended, heartbeat)
         WHERE mapping = $1 AND state = 'ACTIVE'",
    )
    .bind(mapping)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        tracing::warn!(
            mapping,
            runs = done.rows_affected(),
            "marked dead recon runs FAILED"
        );
    }
    Ok(done.rows_affected())
}

/// Scratch rows of runs that are no longer active (left behind by a crash).
async fn clear_scratch_of_finished(conn: &mut PgConnection) -> Result<(), RepoError> {
    sqlx::query(
        "DELETE FROM recon_seen s WHERE NOT EXISTS
           (SELECT 1 FROM recon_runs r WHERE r.id = s.recon_id AND r.state = 'ACTIVE')",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM recon_pending_deletes p WHERE NOT EXISTS
           (SELECT 1 FROM recon_runs r WHERE r.id = p.recon_id AND r.state = 'ACTIVE')",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Refreshes the planner's statistics of the tables a run reads and fills.
pub async fn refresh_statistics<'e>(db: impl PgExecutor<'e>) -> Result<(), RepoError> {
    sqlx::query("ANALYZE managed_objects, links")
        .execute(db)
        .await?;
    Ok(())
}

/// Refreshes a run's heartbeat (without touching its progress).
pub async fn heartbeat<'e>(db: impl PgExecutor<'e>, id: &str) -> Result<(), RepoError> {
    sqlx::query("UPDATE recon_runs SET heartbeat = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn insert<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
    mapping: &str,
    stage: (&str, &str),
    summary: &Map<String, Value>,
    parameters: &Value,
) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO recon_runs (id, mapping, state, stage, stage_description, summary, parameters)
         VALUES ($1, $2, 'ACTIVE', $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(mapping)
    .bind(stage.0)
    .bind(stage.1)
    .bind(Json(summary))
    .bind(Json(parameters))
    .execute(db)
    .await?;
    Ok(())
}

/// Records progress and a heartbeat; returns whether a cancel was requested.
pub async fn progress<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
    stage: (&str, &str),
    summary: &Map<String, Value>,
) -> Result<bool, RepoError> {
    let cancel: Option<bool> = sqlx::query_scalar(
        "UPDATE recon_runs SET stage = $2, stage_description = $3, summary = $4, heartbeat = now()
         WHERE id = $1 AND state = 'ACTIVE'
         RETURNING cancel_requested",
    )
    .bind(id)
    .bind(stage.0)
    .bind(stage.1)
    .bind(Json(summary))
    .fetch_optional(db)
    .await?;
    // A row no longer ACTIVE was reaped as dead by someone who could not see this process:
    // stop, as for a cancel.
    Ok(cancel.unwrap_or(true))
}

/// The final state.
pub async fn finish<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
    state: &str,
    stage: (&str, &str),
    summary: &Map<String, Value>,
) -> Result<(), RepoError> {
    sqlx::query(
        "UPDATE recon_runs SET state = $2, stage = $3, stage_description = $4, summary = $5,
                ended = now(), heartbeat = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(stage.0)
    .bind(stage.1)
    .bind(Json(summary))
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'e>(db: impl PgExecutor<'e>, id: &str) -> Result<Option<RunRow>, RepoError> {
    let sql = format!("SELECT {COLUMNS} FROM recon_runs WHERE id = $1");
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(from_row))
}

/// The latest runs, newest first.
pub async fn list<'e>(db: impl PgExecutor<'e>, limit: i64) -> Result<Vec<RunRow>, RepoError> {
    let sql = format!("SELECT {COLUMNS} FROM recon_runs ORDER BY seq DESC LIMIT $1");
    let rows: Vec<Row> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
        .bind(limit)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Purges a finished run's stored summary: `None` when no run has that id, `(row, false)` when
/// it is still ACTIVE (nothing deleted), `(row, true)` when it was deleted.
pub async fn delete_finished<'e>(
    db: impl PgExecutor<'e> + Copy,
    id: &str,
) -> Result<Option<(RunRow, bool)>, RepoError> {
    let sql =
        format!("DELETE FROM recon_runs WHERE id = $1 AND state <> 'ACTIVE' RETURNING {COLUMNS}");
    let deleted: Option<Row> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
        .bind(id)
        .fetch_optional(db)
        .await?;
    if let Some(row) = deleted {
        return Ok(Some((from_row(row), true)));
    }
    Ok(get(db, id).await?.map(|row| (row, false)))
}

/// Asks an ACTIVE run to stop at its next page boundary; `None` when there is no such run,
/// else its state (a finished run is left as it is).
pub async fn request_cancel<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
) -> Result<Option<String>, RepoError> {
    let state: Option<String> = sqlx::query_scalar(
        "UPDATE recon_runs SET cancel_requested = (state = 'ACTIVE') WHERE id = $1 RETURNING state",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(state)
}

/// Records targets the source phase touched.
pub async fn mark_seen(
    conn: &mut PgConnection,
    recon_id: &str,
    target_ids: &[String],
) -> Result<(), RepoError> {
    if target_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO recon_seen (recon_id, target_id) SELECT $1, unnest($2::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(recon_id)
    .bind(target_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The ids of the next page of managed objects of `object_type` matching `filter`, in id order
/// after `after_id` (keyset paging), that existed when the run started; with `marked`, those
/// the run wrote to `recon_seen` are left out.
pub async fn target_ids<'e>(
    db: impl PgExecutor<'e>,
    recon_id: &str,
    object_type: &str,
    filter: &Filter,
    after_id: Option<&str>,
    limit: i64,
    marked: bool,
) -> Result<Vec<String>, RepoError> {
    let mut qb = sqlx::QueryBuilder::new("SELECT id FROM managed_objects WHERE object_type = ");
    qb.push_bind(object_type.to_owned());
    qb.push(" AND (");
    push_filter(&mut qb, filter);
    qb.push(")");
    if let Some(after) = after_id {
        qb.push(" AND id > ");
        qb.push_bind(after.to_owned());
    }
    if marked {
        qb.push(" AND NOT EXISTS (SELECT 1 FROM recon_seen s WHERE s.recon_id = ");
        qb.push_bind(recon_id.to_owned());
        qb.push(" AND s.target_id = managed_objects.id)");
    }
    // Objects created after the run started (by the run itself, which links each to a source
    // it saw, or by a write meanwhile) are not the target set this run reconciles.
    qb.push(" AND created_at < (SELECT started FROM recon_runs WHERE id = ");
    qb.push_bind(recon_id.to_owned());
    qb.push(") ORDER BY id LIMIT ");
    qb.push_bind(limit);
    let ids: Vec<(String,)> = qb.build_query_as().fetch_all(db).await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// Runs correlation filters over the managed objects of `object_type` in one statement:
/// `(SELECT k, … WHERE f_k LIMIT 2) UNION ALL …` (two rows are enough to tell one match from
/// several). Each branch can use the indexes. Returns each match with its filter's key.
pub async fn correlate<'e>(
    db: impl PgExecutor<'e>,
    object_type: &str,
    filters: &[(usize, &Filter)],
) -> Result<Vec<(usize, StoredObject)>, RepoError> {
    /// A match: the filter's key, then the object's id, rev, body.
    type KeyedRow = (i64, String, i64, Json<Map<String, Value>>);
    if filters.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
    for (i, (k, filter)) in filters.iter().enumerate() {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        qb.push("(SELECT ");
        qb.push_bind(*k as i64);
        qb.push("::int8 AS k, id, rev, body FROM managed_objects WHERE object_type = ");
        qb.push_bind(object_type);
        qb.push(" AND (");
        push_filter(&mut qb, filter);
        qb.push(") ORDER BY id LIMIT 2)");
    }
    let rows: Vec<KeyedRow> = qb.build_query_as().fetch_all(db).await?;
    Ok(rows
        .into_iter()
        .map(|(k, id, rev, Json(body))| (k as usize, StoredObject { id, rev, body }))
        .collect())
}

/// Number of managed objects of a type (the guard's denominator, `target.existing.total`).
pub async fn count_targets<'e>(
    db: impl PgExecutor<'e>,
    object_type: &str,
    filter: &Filter,
) -> Result<i64, RepoError> {
    let mut qb =
        sqlx::QueryBuilder::new("SELECT count(*) FROM managed_objects WHERE object_type = ");
    qb.push_bind(object_type.to_owned());
    qb.push(" AND (");
    push_filter(&mut qb, filter);
    qb.push(")");
    Ok(qb.build_query_scalar().fetch_one(db).await?)
}

/// A delete or deactivation the run decided and holds back until the guard has counted all
/// of them.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDelete {
    pub seq: i64,
    pub target_id: String,
    pub source_id: Option<String>,
    pub situation: String,
    pub action: HeldAction,
    /// The source object, kept only for a mapping's `onDelete` script.
    pub source: Option<Value>,
}

/// What a held row does once the guard allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldAction {
    Delete,
    /// Sets the managed user's `accountStatus` to `inactive`.
    Deactivate,
}

impl HeldAction {
    pub fn as_str(self) -> &'static str {
        match self {
            HeldAction::Delete => "DELETE",
            HeldAction::Deactivate => "DEACTIVATE",
        }
    }

    fn from_db(s: &str) -> HeldAction {
        if s == "DEACTIVATE" {
            HeldAction::Deactivate
        } else {
            HeldAction::Delete
        }
    }
}

pub async fn add_pending_deletes(
    conn: &mut PgConnection,
    recon_id: &str,
    deletes: &[PendingDelete],
) -> Result<(), RepoError> {
    if deletes.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = deletes.iter().map(|d| d.seq).collect();
    let targets: Vec<&str> = deletes.iter().map(|d| d.target_id.as_str()).collect();
    let sources: Vec<Option<&str>> = deletes.iter().map(|d| d.source_id.as_deref()).collect();
    let situations: Vec<&str> = deletes.iter().map(|d| d.situation.as_str()).collect();
    let actions: Vec<&str> = deletes.iter().map(|d| d.action.as_str()).collect();
    let bodies: Vec<Option<Json<&Value>>> = deletes
        .iter()
        .map(|d| d.source.as_ref().map(Json))
        .collect();
    sqlx::query(
        "INSERT INTO recon_pending_deletes (recon_id, seq, target_id, source_id, situation, action, source)
         SELECT $1, u.seq, u.target_id, u.source_id, u.situation, u.action, u.source
         FROM unnest($2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
              AS u(seq, target_id, source_id, situation, action, source)",
    )
    .bind(recon_id)
    .bind(&seqs)
    .bind(&targets)
    .bind(&sources)
    .bind(&situations)
    .bind(&actions)
    .bind(&bodies)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The next held-back deletes after `after_seq`.
pub async fn pending_deletes<'e>(
    db: impl PgExecutor<'e>,
    recon_id: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<PendingDelete>, RepoError> {
    type Row = (
        i64,
        String,
        Option<String>,
        String,
        String,
        Option<Json<Value>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, target_id, source_id, situation, action, source FROM recon_pending_deletes
         WHERE recon_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(recon_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(seq, target_id, source_id, situation, action, source)| PendingDelete {
                seq,
                target_id,
                source_id,
                situation,
                action: HeldAction::from_db(&action),
                source: source.map(|Json(v)| v),
            },
        )
        .collect())
}

/// A target an outbound run found linked to nothing: its id, and whether it qualifies
/// (`validTarget`), or why that could not be told.
pub type Unlinked = (String, Result<bool, String>);

/// Keeps `targets` for the run's target phase.
pub async fn add_unlinked<'e>(
    db: impl PgExecutor<'e>,
    recon_id: &str,
    targets: &[Unlinked],
) -> Result<(), RepoError> {
    if targets.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = targets.iter().map(|(id, _)| id.as_str()).collect();
    let qualifies: Vec<Option<bool>> = targets
        .iter()
        .map(|(_, q)| q.as_ref().ok().copied())
        .collect();
    let errors: Vec<Option<&str>> = targets
        .iter()
        .map(|(_, q)| q.as_ref().err().map(String::as_str))
        .collect();
    sqlx::query(
        "INSERT INTO recon_unlinked (recon_id, target_id, qualifies, error)
         SELECT $1, u.id, u.q, u.e FROM unnest($2::text[], $3::bool[], $4::text[]) AS u(id, q, e)
         ON CONFLICT DO NOTHING",
    )
    .bind(recon_id)
    .bind(&ids)
    .bind(&qualifies)
    .bind(&errors)
    .execute(db)
    .await?;
    Ok(())
}

/// The next kept targets after `after_id`, in id order.
pub async fn unlinked<'e>(
    db: impl PgExecutor<'e>,
    recon_id: &str,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Unlinked>, RepoError> {
    let rows: Vec<(String, Option<bool>, Option<String>)> = sqlx::query_as(
        "SELECT target_id, qualifies, error FROM recon_unlinked
         WHERE recon_id = $1 AND ($2::text IS NULL OR target_id > $2)
         ORDER BY target_id LIMIT $3",
    )
    .bind(recon_id)
    .bind(after_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, qualifies, error)| {
            let qualifies = match (qualifies, error) {
                (Some(q), _) => Ok(q),
                (None, e) => Err(e.unwrap_or_default()),
            };
            (id, qualifies)
        })
        .collect())
}

/// Drops a run's scratch rows (seen targets, held-back deletes, unlinked targets).
pub async fn clear_scratch<'e, E>(db: E, recon_id: &str) -> Result<(), RepoError>
where
    E: PgExecutor<'e> + Copy,
{
    sqlx::query("DELETE FROM recon_seen WHERE recon_id = $1")
        .bind(recon_id)
        .execute(db)
        .await?;
    sqlx::query("DELETE FROM recon_pending_deletes WHERE recon_id = $1")
        .bind(recon_id)
        .execute(db)
        .await?;
    sqlx::query("DELETE FROM recon_unlinked WHERE recon_id = $1")
        .bind(recon_id)
        .execute(db)
        .await?;
    Ok(())
}
