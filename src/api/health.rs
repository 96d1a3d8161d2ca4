//! `GET /openidm/info/ping`: ready when Postgres answers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::repo::db;

pub async fn ping(State(state): State<AppState>) -> Response {
    let db_ok = db::answers(state.managed.pool(), std::time::Duration::from_secs(2)).await;
    if db_ok {
        axum::Json(json!({"_id": "", "state": "ACTIVE_READY", "shortDesc": "OpenIDM ready"}))
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "_id": "",
                "state": "ACTIVE_NOT_READY",
                "shortDesc": "OpenIDM not ready: the repository is unavailable"
            })),
        )
            .into_response()
    }
}
