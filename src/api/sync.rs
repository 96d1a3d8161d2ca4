//! Implicit-sync failures and audit:
//!
//! - `GET /openidm/sync/failures?_queryFilter=…`: the changes the worker could not apply
//!   (mapping, objectId, revision, errorCode, message, attempts, firstFailed, lastFailed…);
//! - `POST /openidm/sync/failures/{id}?_action=retry` and `POST /openidm/sync/failures?_action=retryAll`:
//!   re-enqueue the objects (an outbox row for their current revision, committed with the
//!   request); the failure stays until the object syncs, then it is cleared;
//! - `GET /openidm/audit/sync?_queryFilter=…`: one entry per change the worker processed;
//! - `POST /openidm/sync?_action=resync&mapping=…`: re-enqueue every user not known to be in
//!   step with Salesforce (its link lags its revision, it has no link, or it is gone and its
//!   link remains).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::AppState;
use super::body::Params;
use super::error::ApiError;
use super::render;
use super::repo_link::{Relation, query};
use crate::services::resync::{self, ResyncError};

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

/// `POST /sync?_action=resync&mapping=managedUser_systemSalesforceUser`
pub async fn sync_action(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(&["_action", "mapping", "_prettyPrint"])?;
    match params.get("_action") {
        Some("resync") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Unknown action {other:?}: supported here: resync"
            )));
        }
        None => return Err(ApiError::bad_request("POST on sync needs _action=resync")),
    }
    let name = params
        .get("mapping")
        .ok_or_else(|| ApiError::bad_request("resync needs mapping=<an outbound mapping>"))?;
    let n = resync::resync(&state, name).await.map_err(|e| match e {
        ResyncError::NotConfigured => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        ResyncError::UnknownMapping(_) => ApiError::not_found(e.to_string()),
        ResyncError::NotFromManaged(_) => ApiError::bad_request(e.to_string()),
        ResyncError::Repo(e) => e.into(),
    })?;
    Ok(render::json(
        StatusCode::OK,
        &json!({ "status": "QUEUED", "mapping": name, "resynced": n }),
        params.flag("_prettyPrint")?,
    ))
}

/// `POST /sync/failures?_action=retryAll`
pub async fn collection_action(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(ACTION_PARAMS)?;
    match params.get("_action") {
        Some("retryAll") => {
            let n = state.sync_failures().retry_all().await?;
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
            if !state.sync_failures().retry(&id).await? {
                return Err(ApiError::not_found(format!("Sync failure {id} not found")));
            }
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
