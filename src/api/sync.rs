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
    let recon = state.recon.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Synchronization is not configured (conf/sync.json and the Salesforce provisioner)",
        )
    })?;
    let mapping = recon
        .sync_config()
        .mapping(name)
        .ok_or_else(|| ApiError::not_found(format!("Mapping {name} not found")))?;
    let object_type = mapping.source.strip_prefix("managed/").ok_or_else(|| {
        ApiError::bad_request(format!("Mapping {name} does not start from a managed object: resync re-enqueues managed changes"))
    })?;
    let mut tx = state
        .managed
        .pool()
        .begin()
        .await
        .map_err(RepoError::from)?;
    let n = crate::repo::outbox::enqueue_lagging(&mut tx, object_type, mapping.link_type()).await?;
    tx.commit().await.map_err(RepoError::from)?;
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
