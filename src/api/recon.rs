//! `/openidm/recon`: start (`_action=recon`, `_action=reconById`), list, read and cancel
//! reconciliation runs, in IDM's shapes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::body::Params;
use super::error::ApiError;
use super::render;
use crate::recon::{ReconEngine, ReconError, ReconRequest};

const START_PARAMS: &[&str] = &[
    "_action",
    "mapping",
    "id",
    "waitForCompletion",
    "analyze",
    "allowMassChange",
    "_prettyPrint",
];
const BODY_KEYS: &[&str] = &["sourceQuery", "targetQuery", "runTargetPhase"];
/// Runs listed by `GET /openidm/recon`.
const LIST_LIMIT: i64 = 100;

impl From<ReconError> for ApiError {
    fn from(e: ReconError) -> Self {
        match e {
            ReconError::UnknownMapping(_) | ReconError::BadRequest(_) => {
                ApiError::bad_request(e.to_string())
            }
            ReconError::AlreadyRunning(_) | ReconError::StillActive(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            ReconError::NotFound(_) => ApiError::not_found(e.to_string()),
            ReconError::ConnectorDisabled(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            ReconError::Repo(r) => r.into(),
            ReconError::Salesforce(_) => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
            ReconError::Assessment(_) => ApiError::internal(&e),
        }
    }
}

fn engine(state: &AppState) -> Result<&ReconEngine, ApiError> {
    state.recon.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Reconciliation is not available: conf/ needs sync.json and an enabled Salesforce provisioner",
        )
    })
}

fn pretty(params: &Params) -> Result<bool, ApiError> {
    params.flag("_prettyPrint")
}

/// `POST /openidm/recon?_action=recon|reconById&mapping=…`.
pub async fn start(
    State(state): State<AppState>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    params.allow_only(START_PARAMS)?;
    let engine = engine(&state)?;
    let source_id = match params.get("_action") {
        Some("recon") => None,
        Some("reconById") => Some(
            params
                .get("id")
                .filter(|id| !id.is_empty())
                .ok_or_else(|| ApiError::bad_request("reconById requires the id parameter"))?
                .to_owned(),
        ),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Action {other} is not supported on recon (recon, reconById)"
            )));
        }
        None => return Err(ApiError::bad_request("The _action parameter is required")),
    };
    let mapping = params
        .get("mapping")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("The mapping parameter is required"))?
        .to_owned();
    let mut request = ReconRequest {
        mapping,
        analyze: params.flag("analyze")?,
        allow_mass_change: params.flag("allowMassChange")?,
        source_id,
        ..ReconRequest::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("The request body is not valid: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| ApiError::bad_request("The request body must be a JSON object"))?;
        for key in obj.keys() {
            if !BODY_KEYS.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Unsupported key {key:?} in the request body (sourceQuery, targetQuery, runTargetPhase)"
                )));
            }
        }
        request.source_query = obj.get("sourceQuery").cloned();
        request.target_query = obj.get("targetQuery").cloned();
        request.run_target_phase = match obj.get("runTargetPhase") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "runTargetPhase must be true or false",
                ));
            }
        };
    }
    let started = engine.start(request).await?;
    let answer = if params.flag("waitForCompletion")? {
        let id = started.id.clone();
        let _ = started.task.await;
        let summary = engine.get(&id).await?;
        json!({"_id": id, "state": summary.get("state").cloned().unwrap_or(Value::Null)})
    } else {
        json!({"_id": started.id, "state": "ACTIVE"})
    };
    Ok(render::json(StatusCode::OK, &answer, pretty(&params)?))
}

/// `GET /openidm/recon`.
pub async fn list(State(state): State<AppState>, params: Params) -> Result<Response, ApiError> {
    params.allow_only(&["_prettyPrint"])?;
    let runs = engine(&state)?.list(LIST_LIMIT).await?;
    Ok(render::json(
        StatusCode::OK,
        &json!({"reconciliations": runs}),
        pretty(&params)?,
    ))
}

/// `GET /openidm/recon/{id}`.
pub async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(&["_prettyPrint"])?;
    let summary = engine(&state)?.get(&id).await?;
    Ok(render::json(StatusCode::OK, &summary, pretty(&params)?))
}

/// `DELETE /openidm/recon/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(&["_prettyPrint"])?;
    let summary = engine(&state)?.delete(&id).await?;
    Ok(render::json(StatusCode::OK, &summary, pretty(&params)?))
}

/// `POST /openidm/recon/{id}?_action=cancel`.
pub async fn instance_action(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(&["_action", "_prettyPrint"])?;
    match params.get("_action") {
        Some("cancel") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Action {other} is not supported on a reconciliation (cancel)"
            )));
        }
        None => return Err(ApiError::bad_request("The _action parameter is required")),
    }
    let answer = engine(&state)?.cancel(&id).await?;
    Ok(render::json(StatusCode::OK, &answer, pretty(&params)?))
}
