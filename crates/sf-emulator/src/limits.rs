//! What every data call goes through: API version check, bearer-token check, the daily allowance
//! (`Sforce-Limit-Info`, `REQUEST_LIMIT_EXCEEDED`), injected latency and 503s; plus `/limits`, the
//! version list and call counting.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::errors::ApiError;
use super::{MAX_API_VERSION, MIN_API_VERSION, Shared, lock, oauth};

/// Who is calling, for data handlers: the API version in the path (`v62.0`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub version: String,
}

/// `vNN.0` within the served range.
pub fn parse_version(segment: &str) -> Option<u32> {
    let n = segment
        .strip_prefix('v')?
        .strip_suffix(".0")?
        .parse::<u32>()
        .ok()?;
    (MIN_API_VERSION..=MAX_API_VERSION)
        .contains(&n)
        .then_some(n)
}

fn release_label(v: u32) -> String {
    // v44 is Winter '19; three releases a year (Winter, Spring, Summer), Winter opening the year.
    let step = v.saturating_sub(44);
    let season = match step % 3 {
        0 => "Winter",
        1 => "Spring",
        _ => "Summer",
    };
    format!("{season} '{:02}", 19 + step / 3)
}

/// `GET /services/data/`: the served versions, oldest first (no auth, not counted).
pub async fn versions() -> Json<serde_json::Value> {
    let list: Vec<_> = (MIN_API_VERSION..=MAX_API_VERSION)
        .map(|v| json!({ "label": release_label(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0") }))
        .collect();
    Json(json!(list))
}

/// Any path nothing else serves.
pub async fn not_found() -> Response {
    ApiError::not_found().into_response()
}

/// Outer layer of every Salesforce route: counts the call by method and path template and adds
/// the configured latency.
pub async fn count_and_delay(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    if let Some(t) = template {
        shared.stats.record_call(req.method().as_str(), &t);
    }
    let latency = lock(&shared.faults).latency_ms;
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    next.run(req).await
}

/// The `Sforce-Limit-Info` value.
fn usage_header(shared: &Shared) -> HeaderValue {
    let used = shared.api_used.load(Ordering::Relaxed);
    let max = shared.daily_limit.load(Ordering::Relaxed);
    HeaderValue::from_str(&format!("api-usage={used}/{max}"))
        .unwrap_or(HeaderValue::from_static("api-usage=0/0"))
}

/// Layer of the data routes (`/services/data/vNN.N/…`).
pub async fn guard(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let version = req
        .uri()
        .path()
        .split('/')
        .nth(3)
        .unwrap_or_default()
        .to_owned();
    if parse_version(&version).is_none() {
        return ApiError::not_found().into_response();
    }
    let now = chrono::Utc::now();
    let authorized = oauth::bearer(req.headers()).is_some_and(|t| {
        lock(&shared.tokens).use_access(t, now, shared.config.access_token_max_uses)
    });
    if !authorized {
        return ApiError::invalid_session().into_response();
    }
    // The allowance: a call past it is refused and not counted.
    let max = shared.daily_limit.load(Ordering::Relaxed);
    let counted = shared
        .api_used
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            (u < max).then_some(u + 1)
        });
    if counted.is_err() {
        let mut resp = ApiError::limit_exceeded().into_response();
        resp.headers_mut()
            .insert("Sforce-Limit-Info", usage_header(&shared));
        return resp;
    }
    let rate = lock(&shared.faults).rate_503;
    let mut resp = if shared.rng.chance(rate) {
        ApiError::unavailable().into_response()
    } else {
        req.extensions_mut().insert(Caller { version });
        next.run(req).await
    };
    resp.headers_mut()
        .insert("Sforce-Limit-Info", usage_header(&shared));
    resp
}

/// `GET /services/data/vNN.N/limits`.
pub async fn limits(State(shared): State<Arc<Shared>>) -> Response {
    let used = shared.api_used.load(Ordering::Relaxed);
    let max = shared.daily_limit.load(Ordering::Relaxed);
    let pair = |m: u64, r: u64| json!({ "Max": m, "Remaining": r });
    Json(json!({
        "ConcurrentAsyncGetReportInstances": pair(200, 200),
        "ConcurrentSyncReportRuns": pair(20, 20),
        "DailyApiRequests": pair(max, max.saturating_sub(used)),
        "DailyAsyncApexExecutions": pair(250_000, 250_000),
        "DailyBulkApiBatches": pair(15_000, 15_000),
        "DailyBulkV2QueryFileStorageMB": pair(976_562, 976_562),
        "DailyBulkV2QueryJobs": pair(10_000, 10_000),
        "DailyDurableStreamingApiEvents": pair(10_000, 10_000),
        "DataStorageMB": pair(5, 5),
        "FileStorageMB": pair(20, 20),
        "HourlyTimeBasedWorkflow": pair(50, 50),
        "SingleEmail": pair(5_000, 5_000),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_labels() {
        assert_eq!(parse_version("v62.0"), Some(62));
        assert_eq!(parse_version("v44.0"), Some(44));
        assert_eq!(parse_version("v43.0"), None);
        assert_eq!(parse_version("v63.0"), None);
        assert_eq!(parse_version("62.0"), None);
        assert_eq!(release_label(44), "Winter '19");
        assert_eq!(release_label(62), "Winter '25");
        assert_eq!(release_label(61), "Summer '24");
    }
}
