//! The emulator's admin routes that edit users as an administrator would in Salesforce's own UI:
//! `POST /__emulator/users` (a REST create body) and `PATCH /__emulator/users/{id}`. Their
//! change events have an empty `changeOrigin` (no API) and the admin user as `commitUser`; they
//! are not API calls (not counted, no token).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Shared;
use super::errors::ApiError;
use super::org::{Org, SaveKind};
use super::sobjects::parse_object;
use super::user_writes::{self, Actor};

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::json_parse(
            "Cannot deserialize instance of User from a value that is not an object",
        )
    })
}

pub fn create(shared: &Shared, body: &Value) -> Result<String, ApiError> {
    let changes = Org::parse_changes(object(body)?, SaveKind::Create)?;
    let id = user_writes::create(shared, changes, String::new(), Actor::Admin)?;
    shared.mark_dirty();
    Ok(id)
}

pub fn update(shared: &Shared, id: &str, body: &Value) -> Result<(), ApiError> {
    let changes = Org::parse_changes(object(body)?, SaveKind::Update)?;
    user_writes::update(shared, id, changes, String::new(), Actor::Admin)?;
    shared.mark_dirty();
    Ok(())
}

fn body_value(body: &[u8]) -> Result<Value, ApiError> {
    parse_object(body).map(Value::Object)
}

/// `POST /__emulator/users` → 201 `{"id","success":true,"errors":[]}`.
pub async fn post_create(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match body_value(&body).and_then(|v| create(&shared, &v)) {
        Ok(id) => (
            StatusCode::CREATED,
            Json(json!({ "id": id, "success": true, "errors": [] })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PATCH /__emulator/users/{id}` → 204.
pub async fn patch_update(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match body_value(&body).and_then(|v| update(&shared, &id, &v)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
