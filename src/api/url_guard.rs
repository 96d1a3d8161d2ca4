//! Refuses a URL that carries a NUL character (`%00`, in the path or the query) before any
//! handler sees it: PostgreSQL cannot store or compare U+0000, so an id or a filter holding one
//! would otherwise fail deep in a query as a 500.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

pub async fn refuse_nul(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let part = if has_nul(uri.path()) {
        Some("path")
    } else if uri.query().is_some_and(has_nul) {
        Some("query string")
    } else {
        None
    };
    match part {
        Some(part) => ApiError::bad_request(format!(
            "The URL's {part} contains a NUL character (%00), which cannot be stored or matched"
        ))
        .into_response(),
        None => next.run(request).await,
    }
}

/// A raw URL cannot hold a NUL byte; only its percent-encoding can.
fn has_nul(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|w| w == b"%00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_the_encoded_nul() {
        assert!(has_nul("/openidm/managed/user/a%00b"));
        assert!(has_nul("_queryFilter=userName%20eq%20%22%00%22"));
        assert!(has_nul("/a%000"));
        assert!(!has_nul("a%20b%0A%100"));
        assert!(!has_nul("%0"));
    }
}
