//! The recon audit log (`audit/recon`): one row per reconciled object, written a page at a
//! time, queried with IDM's query filters.

use serde::Serialize;
use sqlx::PgExecutor;
use sqlx::types::Json;

use super::RepoError;
use super::relation_query::{self, Row};
use crate::filter::Filter;

/// One entry of the recon audit, in IDM's shape (the fields in this order, absent ones `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconAuditEntry {
    /// Always `recon`.
    pub event_name: &'static str,
    /// Always `entry`: one reconciled object.
    pub entry_type: &'static str,
    pub recon_id: String,
    pub mapping: String,
    pub timestamp: String,
    /// `source` or `target`: the phase that met the object.
    pub reconciling: &'static str,
    pub situation: Option<&'static str>,
    pub action: Option<&'static str>,
    /// `SUCCESS` or `FAILURE`.
    pub status: &'static str,
    pub message: Option<String>,
    pub source_object_id: Option<String>,
    pub target_object_id: Option<String>,
    pub link_qualifier: &'static str,
}

/// Writes entries in one statement.
pub async fn insert_batch<'e>(
    db: impl PgExecutor<'e>,
    recon_id: &str,
    entries: &[ReconAuditEntry],
) -> Result<(), RepoError> {
    if entries.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = entries.iter().map(|_| super::new_id()).collect();
    let bodies: Vec<Json<&ReconAuditEntry>> = entries.iter().map(Json).collect();
    sqlx::query(
        "INSERT INTO recon_audit (id, recon_id, body)
         SELECT u.id, $1, u.body FROM unnest($2::text[], $3::jsonb[]) AS u(id, body)",
    )
    .bind(recon_id)
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
    relation_query::query(db, "recon_audit", filter, after_id, limit).await
}
