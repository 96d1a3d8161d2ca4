//! Operations endpoints, without IDM credentials: `GET /metrics` (Prometheus text; counts only,
//! never an id or a secret) and readiness, `GET /openidm/health/ready` (also `/ready`). `serve`
//! and `all` merge them into their API; `worker`, `relay` and `scheduler` serve them on a
//! listener of their own ([`listener`]). Every router's requests are counted ([`http_metrics`]).

pub mod http_metrics;
pub mod listener;
pub mod ready;

use crate::repo::Pool;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{self, Metrics};
pub use ready::Readiness;

/// What the endpoints report on: the metrics registry and the readiness checks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ops {
    pub metrics: Metrics,
    pub readiness: Readiness,
}

impl Ops {
    /// The process's registry, and no readiness checks beyond the database yet.
    pub fn process() -> Ops {
        Ops {
            metrics: Metrics::process(),
            readiness: Readiness::default(),
        }
    }

    /// A registry of its own (tests).
    pub fn isolated() -> Ops {
        Ops {
            metrics: Metrics::isolated(),
            readiness: Readiness::default(),
        }
    }
}

#[derive(Clone)]
struct OpsState {
    ops: Ops,
    pool: Pool,
}

/// `/metrics`, `/openidm/health/ready` and `/ready`.
pub fn router(ops: Ops, pool: Pool) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/openidm/health/ready", get(ready))
        .route("/ready", get(ready))
        .with_state(OpsState { ops, pool })
}

async fn scrape(State(s): State<OpsState>) -> Response {
    let text = metrics::render(&s.ops.metrics, Some(&s.pool)).await;
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

async fn ready(State(s): State<OpsState>) -> Response {
    let report = s.ops.readiness.check(&s.pool).await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report.body)).into_response()
}
