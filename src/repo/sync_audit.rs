//! The implicit-sync audit log (`audit/sync`): one row per change the outbound worker
//! processed, written a batch at a time, queried with IDM's query filters.

use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;
use sqlx::types::Json;

use super::RepoError;
use super::relation_query::{self, Row};
use crate::audit_config::AuditEvent;
use crate::filter::Filter;

/// One entry of the implicit-sync audit: a change the worker processed (the fields in this
/// order, absent ones `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncAuditEntry {
    pub mapping: String,
    pub situation: &'static str,
    pub action: &'static str,
    /// `SUCCESS` or `FAILURE`.
    pub status: &'static str,
    pub message: Option<String>,
    pub source_object_id: String,
    pub target_object_id: Option<String>,
    pub revision: i64,
    pub attempts: u32,
    /// From the commit of the change to its recording.
    pub latency_ms: i64,
    pub timestamp: String,
}

impl SyncAuditEntry {
    /// What `conf/audit.json`'s `sync` filter sees of the entry.
    pub fn event(&self) -> AuditEvent<'_> {
        AuditEvent {
            action: Some(self.action),
            situation: Some(self.situation),
            status: self.status,
            reconciling: None,
            mapping: &self.mapping,
            unchanged: false,
        }
    }
}

/// Writes entries in one statement.
pub async fn insert_batch<'e>(
    db: impl PgExecutor<'e>,
    entries: &[SyncAuditEntry],
) -> Result<(), RepoError> {
    if entries.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = entries.iter().map(|_| super::new_id()).collect();
    let bodies: Vec<Json<&SyncAuditEntry>> = entries.iter().map(Json).collect();
    sqlx::query(
        "INSERT INTO sync_audit (id, body)
         SELECT u.id, u.body FROM unnest($1::text[], $2::jsonb[]) AS u(id, body)",
    )
    .bind(&ids)
    .bind(&bodies)
    .execute(db)
    .await?;
    Ok(())
}

/// Entries matching `filter`, in id order.
pub async fn query<'e>(
    db: impl PgExecutor<'e>,
    filter: &Filter,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Row>, RepoError> {
    relation_query::query(db, "sync_audit", filter, after_id, limit).await
}

/// The newest entry about source object `source_object_id` (e.g. `managed/user/<id>`).
pub async fn latest_for_source<'e>(
    db: impl PgExecutor<'e>,
    source_object_id: &str,
) -> Result<Option<Value>, RepoError> {
    let body: Option<Json<Value>> = sqlx::query_scalar(
        "SELECT body FROM sync_audit WHERE body->>'sourceObjectId' = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(source_object_id)
    .fetch_optional(db)
    .await?;
    Ok(body.map(|Json(b)| b))
}
