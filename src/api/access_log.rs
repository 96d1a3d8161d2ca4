//! One log event per request (method, path, status, duration), at debug level for
//! successes so that a busy server's info log stays readable, and at info level for errors —
//! except refused credentials (401, 429), which stay at debug: the credential guard logs those
//! itself, a few lines however many, so a flood of wrong passwords does not flood the log.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

pub async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if status >= 400 && status != 401 && status != 429 {
        tracing::info!(%method, %path, status, micros, "request");
    } else {
        tracing::debug!(%method, %path, status, micros, "request");
    }
    response
}
