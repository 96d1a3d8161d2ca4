//! `/openidm/managed/{type}`: create, read, replace, patch and delete managed objects
//! (queries are in `managed_query.rs`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::AppState;
use super::body::{JsonBody, Params};
use super::error::ApiError;
use super::render::{self, Fields};
use crate::managed::Precondition;
use crate::managed::patch::PatchOperation;
use crate::repo::managed::StoredObject;

const READ_PARAMS: &[&str] = &["_fields", "_prettyPrint"];
const ACTION_PARAMS: &[&str] = &["_action", "_id", "_fields", "_prettyPrint"];

/// `POST /managed/{type}?_action=create[&_id=…]`
pub async fn collection_action(
    State(state): State<AppState>,
    Path(object_type): Path<String>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    params.allow_only(ACTION_PARAMS)?;
    match params.get("_action") {
        Some("create") => {}
        Some(other) => return Err(unknown_action(other, "create")),
        None => {
            return Err(ApiError::bad_request(
                "POST on a collection needs _action=create",
            ));
        }
    }
    let schema = state.managed.schema(&object_type)?;
    let fields = Fields::parse(params.get("_fields"))?;
    let id = params.get("_id").map(str::to_owned);
    let created = state
        .managed
        .create(&object_type, id, object_body(body)?)
        .await?;
    let location = format!("/openidm/managed/{object_type}/{}", created.id);
    Ok(respond(
        StatusCode::CREATED,
        &created,
        schema,
        &fields,
        &params,
        Some(location),
    ))
}

/// `GET /managed/{type}/{id}`
pub async fn read(
    State(state): State<AppState>,
    Path((object_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(READ_PARAMS)?;
    let schema = state.managed.schema(&object_type)?;
    let fields = Fields::parse(params.get("_fields"))?;
    let object = state.managed.read(&object_type, &id).await?;
    if let Some(rev) = revision_header(&headers, header::IF_NONE_MATCH)? {
        if rev.as_deref() == Some(object.rev.to_string().as_str()) {
            return Ok((StatusCode::NOT_MODIFIED, [render::etag(object.rev)]).into_response());
        }
    }
    Ok(respond(
        StatusCode::OK,
        &object,
        schema,
        &fields,
        &params,
        None,
    ))
}

/// `PUT /managed/{type}/{id}` with `If-None-Match: *` (create), `If-Match` (update) or neither (upsert).
pub async fn put(
    State(state): State<AppState>,
    Path((object_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    params.allow_only(READ_PARAMS)?;
    let schema = state.managed.schema(&object_type)?;
    let fields = Fields::parse(params.get("_fields"))?;
    let pre = match (
        revision_header(&headers, header::IF_MATCH)?,
        revision_header(&headers, header::IF_NONE_MATCH)?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "If-Match and If-None-Match cannot be used together",
            ));
        }
        (Some(rev), None) => Precondition::IfMatch(rev),
        (None, Some(None)) => Precondition::IfNoneMatchAny,
        (None, Some(Some(_))) => {
            return Err(ApiError::bad_request(
                "If-None-Match on PUT must be * (create only)",
            ));
        }
        (None, None) => Precondition::None,
    };
    let (object, created) = state
        .managed
        .put(&object_type, &id, object_body(body)?, pre)
        .await?;
    let (status, location) = if created {
        (
            StatusCode::CREATED,
            Some(format!("/openidm/managed/{object_type}/{id}")),
        )
    } else {
        (StatusCode::OK, None)
    };
    Ok(respond(status, &object, schema, &fields, &params, location))
}

/// `PATCH /managed/{type}/{id}`
pub async fn patch(
    State(state): State<AppState>,
    Path((object_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    params.allow_only(READ_PARAMS)?;
    do_patch(state, object_type, id, headers, params, body).await
}

/// `POST /managed/{type}/{id}?_action=patch`
pub async fn instance_action(
    State(state): State<AppState>,
    Path((object_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params,
    // Optional: triggerSyncCheck is posted without a body.
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<Response, ApiError> {
    params.allow_only(ACTION_PARAMS)?;
    match params.get("_action") {
        Some("patch") => {
            let JsonBody(body) = body?;
            do_patch(state, object_type, id, headers, params, body).await
        }
        Some("triggerSyncCheck") => trigger_sync_check(state, object_type, id, params).await,
        Some(other) => Err(unknown_action(other, "patch, triggerSyncCheck")),
        None => Err(ApiError::bad_request(
            "POST on an object needs _action=patch",
        )),
    }
}

/// `POST /managed/{type}/{id}?_action=triggerSyncCheck`: re-enqueues the object at its
/// current revision (an outbox row, committed here); the worker pushes its full mapped state.
async fn trigger_sync_check(
    state: AppState,
    object_type: String,
    id: String,
    params: Params,
) -> Result<Response, ApiError> {
    state.managed.trigger_sync(&object_type, &id).await?;
    Ok(render::json(
        StatusCode::OK,
        &serde_json::json!({ "_id": id, "status": "QUEUED" }),
        params.flag("_prettyPrint")?,
    ))
}

async fn do_patch(
    state: AppState,
    object_type: String,
    id: String,
    headers: HeaderMap,
    params: Params,
    body: Value,
) -> Result<Response, ApiError> {
    let schema = state.managed.schema(&object_type)?;
    let fields = Fields::parse(params.get("_fields"))?;
    if !body.is_array() {
        return Err(ApiError::bad_request(
            "A patch body must be an array of {\"operation\", \"field\", \"value\"} objects",
        ));
    }
    let operations: Vec<PatchOperation> = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("The patch is not valid: {e}")))?;
    let if_match = revision_header(&headers, header::IF_MATCH)?.flatten();
    let object = state
        .managed
        .patch(&object_type, &id, &operations, if_match)
        .await?;
    Ok(respond(
        StatusCode::OK,
        &object,
        schema,
        &fields,
        &params,
        None,
    ))
}

/// `DELETE /managed/{type}/{id}`
pub async fn delete(
    State(state): State<AppState>,
    Path((object_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(READ_PARAMS)?;
    let schema = state.managed.schema(&object_type)?;
    let fields = Fields::parse(params.get("_fields"))?;
    let if_match = revision_header(&headers, header::IF_MATCH)?.flatten();
    let object = state.managed.delete(&object_type, &id, if_match).await?;
    Ok(respond(
        StatusCode::OK,
        &object,
        schema,
        &fields,
        &params,
        None,
    ))
}

fn respond(
    status: StatusCode,
    object: &StoredObject,
    schema: &crate::config::managed::ManagedObjectConfig,
    fields: &Fields,
    params: &Params,
    location: Option<String>,
) -> Response {
    let pretty = params.flag("_prettyPrint").unwrap_or(false);
    let mut response = render::json(status, &render::object(object, schema, fields), pretty);
    let (name, value) = render::etag(object.rev);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, value);
    }
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn object_body(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(
            "The request body must be a JSON object",
        )),
    }
}

fn unknown_action(name: &str, supported: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Unknown action {name:?}: supported here: {supported}"
    ))
}

/// `Some(None)` for `*`, `Some(Some(rev))` for `"rev"` (quotes optional), `None` when absent.
fn revision_header(
    headers: &HeaderMap,
    name: header::HeaderName,
) -> Result<Option<Option<String>>, ApiError> {
    let Some(value) = headers.get(&name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request(format!("{name} is not valid text")))?
        .trim();
    if text == "*" {
        return Ok(Some(None));
    }
    let unquoted = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    if unquoted.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{name} must be * or a quoted revision"
        )));
    }
    Ok(Some(Some(unquoted.to_owned())))
}
