//! `GET /openidm/audit/recon?_queryFilter=…`: the per-object recon audit (situation, action,
//! status, message, sourceObjectId, targetObjectId, reconId, timestamp, …).

use axum::extract::State;
use axum::response::Response;

use super::AppState;
use super::body::Params;
use super::error::ApiError;
use super::repo_link::{Relation, query};

pub async fn query_recon(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    query(&state, Relation::ReconAudit, &params).await
}
