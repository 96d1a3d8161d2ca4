//! Refusals that axum makes itself (a path segment that is not UTF-8, a body limit met by an
//! extractor of its own) answer in plain text; under `/openidm` every refusal is in IDM's
//! shape, so this layer rewrites them, keeping the status and using the text as the message.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Longest plain-text refusal kept as the message; axum's are one line.
const MAX_MESSAGE_BYTES: usize = 4 * 1024;

pub async fn in_idm_shape(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = match text.is_empty() {
        true => parts
            .status
            .canonical_reason()
            .unwrap_or("Request refused")
            .to_owned(),
        false => text,
    };
    let mut rewritten = ApiError::new(parts.status, message).into_response();
    // Headers such as Retry-After or Allow still apply.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}
