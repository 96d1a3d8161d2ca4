//! Implicit-sync failures and audit:
//!
//! - `GET /openidm/sync/failures?_queryFilter=…`: the changes the worker could not apply
//!   (mapping, objectId, revision, errorCode, message, attempts, firstFailed, lastFailed…);
//! - `POST /openidm/sync/failures/{id}?_action=retry` and `POST /openidm/sync/failures?_action=retryAll`:
//!   re-enqueue the objects (an outbox row for their current revision, committed with the
//!   request); the failure stays until the object syncs, then it is cleared;
//! - `GET /openidm/audit/sync?_queryFilter=…`: one entry per change the worker processed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::AppState;
use super::body::Params;
use super::error::ApiError;
use super::render;
use super::repo_link::{Relation, query};
use crate::repo::{RepoError, sync_failures};

const ACTION_PARAMS: &[&str] = &["_action", "_prettyPrint"];

pub async fn query_failures(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    query(&state, Relation::SyncFailures, &params).await
}

pub async fn query_audit(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    query(&state, Relation::SyncAudit, &params).await
}

/// `POST /sync/failures?_action=retryAll`
pub async fn collection_action(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(ACTION_PARAMS)?;
    match params.get("_action") {
        Some("retryAll") => {
            let mut tx = state
                .managed
                .pool()
                .begin()
                .await
                .map_err(RepoError::from)?;
            let n = sync_failures::retry_all(&mut tx).await?;
            tx.commit().await.map_err(RepoError::from)?;
            Ok(render::json(
                StatusCode::OK,
                &json!({ "status": "QUEUED", "retried": n }),
                params.flag("_prettyPrint")?,
            ))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "Unknown action {other:?}: supported here: retryAll"
        ))),
        None => Err(ApiError::bad_request(
            "POST on sync/failures needs _action=retryAll",
        )),
    }
}

/// `POST /sync/failures/{id}?_action=retry`
pub async fn instance_action(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(ACTION_PARAMS)?;
    match params.get("_action") {
        Some("retry") => {
            let mut tx = state
                .managed
                .pool()
                .begin()
                .await
                .map_err(RepoError::from)?;
            if !sync_failures::retry(&mut tx, &id).await? {
                return Err(ApiError::not_found(format!("Sync failure {id} not found")));
            }
            tx.commit().await.map_err(RepoError::from)?;
            Ok(render::json(
                StatusCode::OK,
                &json!({ "_id": id, "status": "QUEUED" }),
                params.flag("_prettyPrint")?,
            ))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "Unknown action {other:?}: supported here: retry"
        ))),
        None => Err(ApiError::bad_request(
            "POST on a sync failure needs _action=retry",
        )),
    }
}
