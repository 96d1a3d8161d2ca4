//! `POST /openidm/system/{system}/{type}?_action=liveSync`: one liveSync pass
//! (`recon::live_sync`), answered in IDM's shape
//! `{"_rev", "_id": "SYSTEMSALESFORCEUSER", "connectorData": {"nativeType", "syncToken"}}` plus
//! what the pass did (`status` INITIALIZED / SUCCESS / SKIPPED, `changes`, `reconIds`,
//! `statusSummary`).
//!
//! | error | HTTP |
//! |---|---|
//! | no mapping has this source | 400 |
//! | token older than Salesforce's 30 days; a recon run of the changes failed | 409 (IDM answers a failed liveSync with 409) |
//! | polling Salesforce failed | as every Salesforce error (`system.rs`) |
//! | recon not configured | 503 |

use axum::http::StatusCode;
use axum::response::Response;

use super::AppState;
use super::body::Params;
use super::error::ApiError;
use super::render;
use super::salesforce_errors::sf_error;
use crate::recon::{LiveSync, LiveSyncError};

impl From<LiveSyncError> for ApiError {
    fn from(e: LiveSyncError) -> Self {
        match e {
            LiveSyncError::UnknownSource(_) => ApiError::bad_request(e.to_string()),
            LiveSyncError::TokenTooOld { .. } | LiveSyncError::RunFailed { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            LiveSyncError::Poll(source, cause) => {
                let mut error = sf_error(cause);
                error.message = format!("liveSync of {source}: {}", error.message);
                error
            }
            LiveSyncError::BadCoverage(_) => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
            LiveSyncError::Recon(r) => r.into(),
            LiveSyncError::Repo(r) => r.into(),
        }
    }
}

pub async fn live_sync(
    state: &AppState,
    source: &str,
    params: &Params,
) -> Result<Response, ApiError> {
    let engine = state.recon.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "liveSync is not available: conf/ needs sync.json and an enabled Salesforce provisioner",
        )
    })?;
    let pass = LiveSync::new(engine).run_once(source).await?;
    Ok(render::json(
        StatusCode::OK,
        &pass.to_json(),
        params.flag("_prettyPrint")?,
    ))
}
