//! Counts and times every request the router answers, by method, matched route and status
//! (`idm_http_requests_total`, `idm_http_request_duration_seconds`). The route is the router's
//! template, never the raw path, so a client inventing paths or methods adds no series.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::metrics::{HttpLabels, Metrics};

/// `router` with every exchange counted into `metrics`.
pub fn counted(router: Router, metrics: Metrics) -> Router {
    router.layer(middleware::from_fn_with_state(metrics, record))
}

async fn record(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = HttpLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    metrics.http_request(&labels, started.elapsed());
    response
}

/// The standard methods a route of ours can serve; anything else is counted as `other`.
const METHODS: [(Method, &str); 7] = [
    (Method::GET, "GET"),
    (Method::HEAD, "HEAD"),
    (Method::POST, "POST"),
    (Method::PUT, "PUT"),
    (Method::PATCH, "PATCH"),
    (Method::DELETE, "DELETE"),
    (Method::OPTIONS, "OPTIONS"),
];

fn method_label(method: &Method) -> &'static str {
    METHODS
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, label)| label)
}
