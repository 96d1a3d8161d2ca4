//! The emulator's own admin routes (not Salesforce's): `/__emulator/faults`, `/__emulator/stats`,
//! `/__emulator/reset-stats`, `/__emulator/access`. Not authenticated and not counted: they are test and benchmark tools.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::faults::{FaultConfig, FaultUpdate};
use super::stats::StatsSnapshot;
use super::{Shared, lock, read};

pub fn apply_faults(shared: &Shared, update: &FaultUpdate) {
    lock(&shared.faults).apply(update);
    if update.expire_tokens == Some(true) {
        lock(&shared.tokens).expire_all_access();
        shared.mark_dirty();
    }
    if let Some(limit) = update.daily_limit {
        shared.daily_limit.store(limit, Ordering::Relaxed);
    }
    if let Some(used) = update.api_usage {
        shared.api_used.store(used, Ordering::Relaxed);
    }
    if let Some(rows) = update.subquery_inline_rows {
        shared
            .subquery_inline_rows
            .store(rows.max(1), Ordering::Relaxed);
    }
}

pub fn snapshot(shared: &Shared) -> StatsSnapshot {
    shared.stats.snapshot(
        shared.api_used.load(Ordering::Relaxed),
        shared.daily_limit.load(Ordering::Relaxed),
    )
}

fn faults_view(shared: &Shared) -> serde_json::Value {
    let f: FaultConfig = shared.faults();
    let mut v = serde_json::to_value(f).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "dailyLimit".to_owned(),
            shared.daily_limit.load(Ordering::Relaxed).into(),
        );
        obj.insert(
            "apiUsage".to_owned(),
            shared.api_used.load(Ordering::Relaxed).into(),
        );
        obj.insert(
            "subqueryInlineRows".to_owned(),
            shared.subquery_inline_rows.load(Ordering::Relaxed).into(),
        );
    }
    v
}

/// `GET /__emulator/faults`: the standing faults, the allowance, the usage and the subquery's
/// inline rows.
pub async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(faults_view(&shared))
}

/// `POST /__emulator/faults` with a partial [`FaultUpdate`]; answers like `GET`.
pub async fn post_faults(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<FaultUpdate>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(update)) => {
            apply_faults(&shared, &update);
            Json(faults_view(&shared)).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": e.body_text() })),
        )
            .into_response(),
    }
}

/// `GET /__emulator/stats`.
pub async fn get_stats(State(shared): State<Arc<Shared>>) -> Json<StatsSnapshot> {
    Json(snapshot(&shared))
}

/// `POST /__emulator/reset-stats`: zeroes the call counters (not the API usage).
pub async fn reset_stats(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.stats.reset();
    StatusCode::NO_CONTENT
}

/// `GET /__emulator/access`: how many records each access object has, e.g.
/// `{"PermissionSetAssignment": 300100, …}`.
pub async fn get_access(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let org = read(&shared.org);
    let counts: serde_json::Map<String, serde_json::Value> = org
        .access
        .counts(org.profiles.len())
        .into_iter()
        .map(|(o, n)| (o.name().to_owned(), n.into()))
        .collect();
    Json(serde_json::Value::Object(counts))
}
