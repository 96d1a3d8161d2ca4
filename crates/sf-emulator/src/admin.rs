//! The emulator's own admin routes (not Salesforce's): `/__emulator/faults`, `/__emulator/stats`,
//! `/__emulator/reset-stats`, `/__emulator/access`. Not authenticated and not counted: they are test and benchmark tools.
//! (`/__emulator/users`, an admin's user edits, is in `admin_users`.)

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::faults::{FaultConfig, FaultUpdate, GapType};
use super::pubsub::{Change, ChangeType, Transaction};
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
    apply_pubsub(shared, update);
}

fn apply_pubsub(shared: &Shared, update: &FaultUpdate) {
    let ps = &shared.pubsub;
    if let Some(secs) = update.pubsub_retention_secs {
        ps.bus
            .set_retention(Duration::from_secs(secs), chrono::Utc::now());
    }
    if let Some(ms) = update.pubsub_keepalive_ms {
        ps.set_keepalive(Duration::from_millis(ms));
    }
    if let Some(ms) = update.pubsub_idle_timeout_ms {
        ps.set_idle_timeout(Duration::from_millis(ms));
    }
    if let Some(gap) = &update.pubsub_gap {
        let kind = match gap.change_type {
            GapType::GapCreate => ChangeType::GapCreate,
            GapType::GapUpdate => ChangeType::GapUpdate,
            GapType::GapDelete => ChangeType::GapDelete,
            GapType::GapUndelete => ChangeType::GapUndelete,
        };
        publish_gap(shared, kind, gap.record_ids.clone());
    }
    if update.pubsub_overflow == Some(true) {
        publish_gap(shared, ChangeType::GapOverflow, Vec::new());
    }
    if let Some(after) = update.pubsub_drop_streams {
        ps.bus.drop_streams(after);
    }
}

/// Publishes a gap or overflow event, as a change made by the org's admin user outside the API.
pub fn publish_gap(shared: &Shared, kind: ChangeType, record_ids: Vec<String>) {
    // The org lock orders it among the writes, which publish under it too.
    let org = read(&shared.org);
    let txn = Transaction {
        origin: String::new(),
        commit_user: org.admin_user_id(),
        changes: vec![Change::gap(kind, record_ids)],
    };
    shared.pubsub.publish(&txn, chrono::Utc::now());
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
        let ps = &shared.pubsub;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        obj.insert(
            "pubsubRetentionSecs".to_owned(),
            ps.bus.retention().as_secs().into(),
        );
        obj.insert("pubsubKeepaliveMs".to_owned(), ms(ps.keepalive()).into());
        obj.insert(
            "pubsubIdleTimeoutMs".to_owned(),
            ms(ps.idle_timeout()).into(),
        );
        obj.insert("pubsubEvents".to_owned(), ps.bus.len().into());
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
