//! Error shapes: the REST error array, per-record DML errors, OAuth errors, and the emulator's own
//! start-up errors.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Errors starting or running the emulator (not Salesforce errors: those are answers).
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    ReadFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid {what} file: {reason}")]
    BadFile {
        path: std::path::PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("cannot write the state file {path}")]
    WriteState {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error("the change event schema")]
    Schema(#[from] crate::pubsub::schema::SchemaError),
    #[error("the Pub/Sub API (gRPC) server failed")]
    PubSubServe(#[source] tonic::transport::Error),
}

/// A REST error answer: HTTP status and the JSON array `[{"message","errorCode","fields"?}]`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<String>,
    /// DML errors always carry `fields` (possibly empty); session/limit errors carry none.
    pub show_fields: bool,
    /// `Allow` header, for 405 answers.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            show_fields: false,
            allow: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    pub fn invalid_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    pub fn limit_exceeded() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server Unavailable",
        )
    }

    /// `(errorCode, message)`, for callers outside HTTP.
    pub fn code_and_message(self) -> (String, String) {
        (self.code.to_owned(), self.message)
    }

    pub fn json_parse(message: impl Into<String>) -> Self {
        Self::bad_request("JSON_PARSER_ERROR", message)
    }

    /// 405 in the form Salesforce uses: "HTTP Method 'DELETE' not allowed. Allowed are HEAD,GET,PATCH".
    pub fn method_not_allowed(method: &str, allowed: &'static str) -> Self {
        Self {
            allow: Some(allowed),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
            )
        }
    }
}

impl From<DmlError> for ApiError {
    fn from(e: DmlError) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: e.code,
            message: e.message,
            fields: e.fields,
            show_fields: true,
            allow: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.show_fields || !self.fields.is_empty() {
            json!([{ "message": self.message, "errorCode": self.code, "fields": self.fields }])
        } else {
            json!([{ "message": self.message, "errorCode": self.code }])
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}

/// A save error on one record (create/update), as Salesforce's `Error` object: `statusCode` in
/// sObject Collections results, `errorCode` in the single-record REST answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DmlError {
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<String>,
}

impl DmlError {
    pub fn new(code: &'static str, message: impl Into<String>, fields: Vec<String>) -> Self {
        Self {
            code,
            message: message.into(),
            fields,
        }
    }

    pub fn unable_to_lock(id: Option<&str>) -> Self {
        let message = match id {
            Some(id) => {
                format!("unable to obtain exclusive access to this record or 1 records: {id}")
            }
            None => "unable to obtain exclusive access to this record".to_owned(),
        };
        Self::new("UNABLE_TO_LOCK_ROW", message, Vec::new())
    }

    pub fn rolled_back() -> Self {
        Self::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
            Vec::new(),
        )
    }

    /// The collections form `{"statusCode","message","fields"}`.
    pub fn to_collection_json(&self) -> serde_json::Value {
        json!({ "statusCode": self.code, "message": self.message, "fields": self.fields })
    }
}

/// An OAuth endpoint error: HTTP 400 `{"error","error_description"}`.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: &'static str,
}

impl OAuthError {
    pub const fn new(error: &'static str, description: &'static str) -> Self {
        Self { error, description }
    }
    pub const EXPIRED_GRANT: Self = Self::new("invalid_grant", "expired access/refresh token");
    pub const BAD_CODE: Self = Self::new("invalid_grant", "invalid authorization code");
    pub const BAD_CLIENT: Self = Self::new("invalid_client", "invalid client credentials");
    pub const BAD_CLIENT_ID: Self = Self::new("invalid_client_id", "client identifier invalid");
    pub const UNSUPPORTED_GRANT: Self =
        Self::new("unsupported_grant_type", "grant type not supported");
    pub const REDIRECT_MISMATCH: Self = Self::new(
        "redirect_uri_mismatch",
        "redirect_uri must match configuration",
    );
    pub const INVALID_TOKEN: Self = Self::new("invalid_token", "invalid token");
    /// A code issued for a PKCE challenge, exchanged without its verifier or with another.
    pub const BAD_VERIFIER: Self = Self::new("invalid_grant", "invalid code verifier");
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response()
    }
}
