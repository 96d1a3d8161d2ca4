//! `GET /openidm/info/ping`: ready when Postgres answers; the `shortDesc` also says when this
//! process's relay cannot reach the message broker (writes go on: changes wait in the outbox).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::repo::db;

pub async fn ping(State(state): State<AppState>) -> Response {
    let db_ok = db::answers(state.managed.pool(), std::time::Duration::from_secs(2)).await;
    if db_ok {
        let broker_down = state.broker.as_ref().is_some_and(|b| !b.is_up());
        let short_desc = if broker_down {
            "OpenIDM ready; the message broker is unreachable: changes wait in the outbox"
        } else {
            "OpenIDM ready"
        };
        axum::Json(json!({"_id": "", "state": "ACTIVE_READY", "shortDesc": short_desc}))
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
