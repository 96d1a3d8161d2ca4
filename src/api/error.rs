//! IDM's error shape: `{"code":N,"reason":"<HTTP reason phrase>","message":"…"[,"detail":{…}]}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::limits::LimitError;
use crate::managed::ManagedError;
use crate::repo::RepoError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub detail: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            detail: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Access Denied")
    }

    /// Logs the error with its whole cause chain; the client learns nothing more than 500.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %chain(error), "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }

    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("code".into(), Value::from(self.status.as_u16()));
        body.insert(
            "reason".into(),
            Value::from(
                self.status
                    .canonical_reason()
                    .unwrap_or("Resource Exception"),
            ),
        );
        body.insert("message".into(), Value::from(self.message.clone()));
        if let Some(detail) = &self.detail {
            body.insert("detail".into(), detail.clone());
        }
        Value::Object(body)
    }
}

pub use crate::telemetry::error_chain as chain;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

impl From<ManagedError> for ApiError {
    fn from(e: ManagedError) -> Self {
        match e {
            ManagedError::UnknownType(t) => {
                ApiError::not_found(format!("Resource 'managed/{t}' not found"))
            }
            ManagedError::NotFound(..) => ApiError::not_found(e.to_string()),
            ManagedError::PreconditionFailed(m) => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, m)
            }
            ManagedError::Policy(failures) => ApiError {
                status: StatusCode::FORBIDDEN,
                message: "Policy validation failed".into(),
                detail: Some(crate::managed::policy::detail(&failures)),
            },
            ManagedError::BadRequest(m) => ApiError::bad_request(m),
            ManagedError::Patch(p) if p.is_size() => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, p.to_string())
            }
            ManagedError::Patch(p) => ApiError::bad_request(p.to_string()),
            ManagedError::Limit(l) => l.into(),
            ManagedError::Repo(r) => r.into(),
            ManagedError::Hashing => ApiError::internal(&e),
        }
    }
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> Self {
        let status = if e.is_size() {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        // The message starts with what was refused; IDM's messages start with a capital.
        let text = e.to_string();
        let mut chars = text.chars();
        let message = match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => text,
        };
        ApiError::new(status, message)
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        // 503, not 500: the request was well formed and nothing is broken; the server could
        // not answer within its time limit (a lock held elsewhere, a loaded database), which
        // is what "try again later" means. A 500 would send operators looking for a bug.
        if let RepoError::Timeout { limit, .. } = &e {
            tracing::warn!(error = %chain(&e), "a database statement reached its time limit");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "The repository did not answer within its time limit ({limit}); try again later, or narrow the request"
                ),
            );
        }
        if e.is_unavailable() {
            tracing::error!(error = %chain(&e), "repository unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The repository is unavailable",
            )
        } else {
            ApiError::internal(&e)
        }
    }
}
