//! Authentication of every request but the ping: `X-OpenIDM-Username`/`X-OpenIDM-Password`
//! headers or HTTP Basic, checked by the shared [`Authenticator`] (throttle, hash cap, the
//! default password only from loopback); this file reads the credentials and answers refusals
//! in IDM's error shape.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::error::ApiError;
use crate::credentials::{Authenticator, DEFAULT_PASSWORD_REFUSED, Refusal, client_of};

/// The credentials a request carries, if any.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let (Some(user), Some(password)) =
        (header("x-openidm-username"), header("x-openidm-password"))
    {
        return Some((user, password));
    }
    let basic = header("authorization")?;
    let encoded = basic
        .strip_prefix("Basic ")
        .or_else(|| basic.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// A refusal in IDM's shape: 401 for wrong credentials, 429 while the address is throttled,
/// 503 when every hash slot is busy, 403 for the default password from afar (the credentials
/// are right, so 401 — "try other credentials" — would mislead: the server refuses to let
/// them in from there, and says what to change).
fn refused(refusal: &Refusal) -> Response {
    let error = match refusal {
        Refusal::Wrong => ApiError::unauthorized(),
        Refusal::Throttled { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed authentication attempts from this address: retry after {} seconds",
                refusal.retry_after_secs().unwrap_or(1)
            ),
        ),
        Refusal::Busy { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many password checks in progress: retry shortly",
        ),
        Refusal::DefaultPasswordRemote => {
            ApiError::new(StatusCode::FORBIDDEN, DEFAULT_PASSWORD_REFUSED)
        }
    };
    let mut res = error.into_response();
    if let Some(secs) = refusal.retry_after_secs() {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// Middleware: the request runs only if it authenticates.
pub async fn require_auth(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    let Some((user, password)) = credentials(request.headers()) else {
        return ApiError::unauthorized().into_response();
    };
    let client = client_of(request.extensions());
    match auth.authenticate(client, &user, &password).await {
        Ok(()) => {
            drop(password);
            next.run(request).await
        }
        Err(refusal) => refused(&refusal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_and_basic() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic YWRtaW46cGE6c3M=".parse().unwrap());
        assert_eq!(credentials(&h), Some(("admin".into(), "pa:ss".into())));
        h.insert("x-openidm-username", "u".parse().unwrap());
        h.insert("x-openidm-password", "p".parse().unwrap());
        assert_eq!(credentials(&h), Some(("u".into(), "p".into())));
    }

    #[test]
    fn refusals_in_idm_shape_with_retry_after() {
        let res = refused(&Refusal::Throttled {
            retry_after: std::time::Duration::from_secs(4),
        });
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "4");
        let res = refused(&Refusal::DefaultPasswordRemote);
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(refused(&Refusal::Wrong).status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused(&Refusal::Busy {
                retry_after: std::time::Duration::from_secs(1)
            })
            .headers()[header::RETRY_AFTER],
            "1"
        );
    }
}
