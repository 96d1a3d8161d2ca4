//! `GET /openidm/info/ping`: ready when Postgres answers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

pub async fn ping(State(state): State<AppState>) -> Response {
    let db_ok = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(state.managed.pool()),
    )
    .await
    .is_ok_and(|r| r.is_ok());
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
