//! Typed errors at the client's boundary, and the parsing of Salesforce's error bodies.
//!
//! REST errors are a JSON array of `{"message", "errorCode", "fields"}`; sObject Collections report
//! per-record errors as `{"statusCode", "message", "fields"}`. Both parse into [`ApiError`]. No
//! variant ever carries a token or the client secret: token-endpoint answers are reduced to their
//! `error` and `error_description`, and unparseable bodies are never echoed when they may hold one.

use serde::{Deserialize, Serialize};

use crate::limits::ApiUsage;

/// One error of a Salesforce error array (or of a Collections per-record result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// `errorCode` in REST errors, `statusCode` in Collections and SOAP-style errors.
    #[serde(rename = "errorCode", alias = "statusCode")]
    pub error_code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Error codes after which the same call may succeed if made again (documented as retryable).
const TRANSIENT_CODES: [&str; 2] = ["SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"];

/// What a caller should do about an error, whatever its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The refresh token is dead (`invalid_grant`): an operator must authorize again.
    NeedsReauthorization,
    /// The consumer key or secret is wrong (`invalid_client`), or this role's secrets key cannot
    /// open the stored ones.
    BadCredentials,
    /// No refresh token at all: the org was never authorized.
    NotAuthorized,
    /// `REQUEST_LIMIT_EXCEEDED`: pause until the allowance recovers; retrying burns nothing useful.
    RateLimited,
    /// Worth trying again later (503, row lock, timeout, connection failure), retries exhausted.
    Transient,
    /// The record does not exist.
    NotFound,
    /// Salesforce refused the request or record (validation, bad SOQL, …): retrying cannot help.
    Rejected,
    /// The token store (Postgres) failed: worth trying again later, and not Salesforce's fault.
    Storage,
    /// Anything else: unexpected answers, bad arguments.
    Other,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SalesforceError {
    #[error(
        "Salesforce needs re-authorization: the token endpoint answered {error} ({description}); run `idm-sync salesforce authorize`"
    )]
    NeedsReauthorization { error: String, description: String },

    #[error(
        "Salesforce rejected the client credentials: {error} ({description}); check clientId and clientSecret"
    )]
    BadCredentials { error: String, description: String },

    #[error("Salesforce is not authorized: no refresh token is configured or stored")]
    NotAuthorized,

    #[error("the token endpoint refused the request: {error} ({description})")]
    TokenRejected { error: String, description: String },

    #[error("Salesforce API request limit exceeded: {message}")]
    RequestLimitExceeded {
        message: String,
        usage: Option<ApiUsage>,
    },

    #[error("Salesforce answered HTTP {status}: {}", summary(errors))]
    Api { status: u16, errors: Vec<ApiError> },

    #[error("Salesforce rejected the record: {}", summary(errors))]
    RecordRejected { errors: Vec<ApiError> },

    /// A non-Salesforce-shaped error answer (a proxy's or load balancer's page, say).
    #[error("HTTP {status} from Salesforce: {excerpt}")]
    Http { status: u16, excerpt: String },

    #[error("request to Salesforce timed out: {0}")]
    Timeout(String),

    #[error("cannot connect to Salesforce: {0}")]
    Connect(String),

    #[error("HTTP transport error talking to Salesforce: {0}")]
    Transport(String),

    #[error("unexpected answer from Salesforce: {0}")]
    InvalidResponse(String),

    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<SalesforceError>,
    },

    #[error("cannot use the Salesforce token store: {0}")]
    TokenStore(String),

    /// The stored secrets are sealed under another key (or damaged): every call fails alike
    /// until the role gets the right key.
    #[error("cannot read the stored Salesforce secrets: {0}")]
    SecretsKey(String),

    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

fn summary(errors: &[ApiError]) -> String {
    if errors.is_empty() {
        return "no error detail".to_owned();
    }
    errors
        .iter()
        .map(|e| {
            if e.fields.is_empty() {
                format!("{}: {}", e.error_code, e.message)
            } else {
                format!("{}: {} [{}]", e.error_code, e.message, e.fields.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl SalesforceError {
    /// Builds the error for a non-2xx data answer from its status and body.
    pub fn from_response(status: u16, body: &[u8], usage: Option<ApiUsage>) -> SalesforceError {
        match parse_error_body(body) {
            Some(errors) => {
                if let Some(limit) = errors
                    .iter()
                    .find(|e| e.error_code == "REQUEST_LIMIT_EXCEEDED")
                {
                    return SalesforceError::RequestLimitExceeded {
                        message: limit.message.clone(),
                        usage,
                    };
                }
                SalesforceError::Api { status, errors }
            }
            None => SalesforceError::Http {
                status,
                excerpt: excerpt(body),
            },
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            SalesforceError::NeedsReauthorization { .. } => ErrorKind::NeedsReauthorization,
            SalesforceError::BadCredentials { .. } | SalesforceError::SecretsKey(_) => {
                ErrorKind::BadCredentials
            }
            SalesforceError::NotAuthorized => ErrorKind::NotAuthorized,
            SalesforceError::RequestLimitExceeded { .. } => ErrorKind::RateLimited,
            SalesforceError::RetriesExhausted { .. } => ErrorKind::Transient,
            SalesforceError::TokenStore(_) => ErrorKind::Storage,
            SalesforceError::Api { status: 404, .. } => ErrorKind::NotFound,
            e if e.is_transient(true) => ErrorKind::Transient,
            SalesforceError::Api { .. }
            | SalesforceError::RecordRejected { .. }
            | SalesforceError::TokenRejected { .. } => ErrorKind::Rejected,
            _ => ErrorKind::Other,
        }
    }

    /// The first Salesforce error code, if Salesforce gave one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            SalesforceError::Api { errors, .. } | SalesforceError::RecordRejected { errors } => {
                errors.first().map(|e| e.error_code.as_str())
            }
            SalesforceError::RequestLimitExceeded { .. } => Some("REQUEST_LIMIT_EXCEEDED"),
            SalesforceError::RetriesExhausted { last, .. } => last.error_code(),
            _ => None,
        }
    }

    /// The Salesforce errors carried, if any (code, message, fields).
    pub fn api_errors(&self) -> &[ApiError] {
        match self {
            SalesforceError::Api { errors, .. } | SalesforceError::RecordRejected { errors } => {
                errors
            }
            SalesforceError::RetriesExhausted { last, .. } => last.api_errors(),
            _ => &[],
        }
    }

    /// Whether making the same call again may succeed. `idempotent` says whether the call may be
    /// repeated after an ambiguous failure (a timeout or a reset connection may hide a write that
    /// happened): a create is not, so only failures that prove nothing was done count for it.
    pub fn is_transient(&self, idempotent: bool) -> bool {
        match self {
            // Salesforce refuses these before doing anything: always safe to repeat.
            SalesforceError::Api { status, errors } => {
                *status == 503
                    || errors
                        .iter()
                        .any(|e| TRANSIENT_CODES.contains(&e.error_code.as_str()))
            }
            SalesforceError::RecordRejected { errors } => errors
                .iter()
                .any(|e| TRANSIENT_CODES.contains(&e.error_code.as_str())),
            SalesforceError::Http { status, .. } => matches!(status, 502..=504),
            SalesforceError::Connect(_) => true,
            SalesforceError::Timeout(_) | SalesforceError::Transport(_) => idempotent,
            _ => false,
        }
    }

    /// True for 401 `INVALID_SESSION_ID`: the access token expired or was revoked.
    pub fn is_invalid_session(&self) -> bool {
        matches!(self, SalesforceError::Api { status: 401, errors }
            if errors.is_empty() || errors.iter().any(|e| e.error_code == "INVALID_SESSION_ID"))
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> SalesforceError {
        // `without_url`: the URL carries no secret, but the SOQL in it may carry personal data.
        let (timeout, connect) = (e.is_timeout(), e.is_connect());
        let message = error_chain(&e.without_url());
        if timeout {
            SalesforceError::Timeout(message)
        } else if connect {
            SalesforceError::Connect(message)
        } else {
            SalesforceError::Transport(message)
        }
    }
}

/// The error and its causes on one line ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Parses an error body: the documented array, or a single error object (some endpoints).
pub fn parse_error_body(body: &[u8]) -> Option<Vec<ApiError>> {
    if let Ok(errors) = serde_json::from_slice::<Vec<ApiError>>(body) {
        return Some(errors);
    }
    serde_json::from_slice::<ApiError>(body)
        .ok()
        .map(|e| vec![e])
}

/// The start of a body, for an error message about a non-JSON answer.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body.get(..200).unwrap_or(body));
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded bodies: reference/salesforce-api.md §1.7, §2.4, §3.2 (REST errorcodes page and
    // published fixtures of real Salesforce answers).
    const SESSION_EXPIRED: &str =
        r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
    const DUPLICATE: &str = r#"[{"message":"Duplicate Username.<br>The username already exists in this or another Salesforce organization. Usernames must be unique across all Salesforce organizations. To resolve, use a different username (it doesn't need to match the user's email address).","errorCode":"DUPLICATE_USERNAME","fields":["Username"]}]"#;
    const LIMIT: &str =
        r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
    const UNAVAILABLE: &str =
        r#"[{"message":"Server Unavailable","errorCode":"SERVER_UNAVAILABLE"}]"#;
    const MALFORMED: &str = r#"[{"message":"\nSELECT Id FROM User WHERE\n                        ^\nERROR at Row:1:Column:25\nunexpected token: <EOF>","errorCode":"MALFORMED_QUERY"}]"#;

    #[test]
    fn session_expiry_is_recognised() {
        let e = SalesforceError::from_response(401, SESSION_EXPIRED.as_bytes(), None);
        assert!(e.is_invalid_session());
        assert_eq!(e.error_code(), Some("INVALID_SESSION_ID"));
        assert!(!e.is_transient(true));
    }

    #[test]
    fn validation_errors_carry_code_message_and_fields() {
        let e = SalesforceError::from_response(400, DUPLICATE.as_bytes(), None);
        assert_eq!(e.kind(), ErrorKind::Rejected);
        let errors = e.api_errors();
        assert_eq!(errors[0].error_code, "DUPLICATE_USERNAME");
        assert_eq!(errors[0].fields, vec!["Username"]);
        assert!(errors[0].message.starts_with("Duplicate Username."));
        assert!(e.to_string().contains("DUPLICATE_USERNAME"));
    }

    #[test]
    fn request_limit_is_its_own_kind_and_not_transient() {
        let usage = ApiUsage {
            used: 15000,
            max: 15000,
        };
        let e = SalesforceError::from_response(403, LIMIT.as_bytes(), Some(usage));
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(!e.is_transient(true));
        assert!(
            matches!(e, SalesforceError::RequestLimitExceeded { usage: Some(u), .. } if u == usage)
        );
    }

    #[test]
    fn unavailable_and_lock_row_are_transient_even_for_creates() {
        let e = SalesforceError::from_response(503, UNAVAILABLE.as_bytes(), None);
        assert!(e.is_transient(false));
        assert_eq!(e.kind(), ErrorKind::Transient);
        let lock = r#"[{"message":"unable to obtain exclusive access to this record or 1 records: 005000000000001AAA","errorCode":"UNABLE_TO_LOCK_ROW","fields":[]}]"#;
        assert!(SalesforceError::from_response(400, lock.as_bytes(), None).is_transient(false));
        // A timeout may hide a completed create: only idempotent calls repeat it.
        let t = SalesforceError::Timeout("operation timed out".into());
        assert!(t.is_transient(true) && !t.is_transient(false));
    }

    #[test]
    fn soql_errors_and_collection_status_codes_parse() {
        let e = SalesforceError::from_response(400, MALFORMED.as_bytes(), None);
        assert_eq!(e.error_code(), Some("MALFORMED_QUERY"));
        assert!(
            e.api_errors()[0]
                .message
                .contains("ERROR at Row:1:Column:25")
        );
        // Collections (reference §2.6) say statusCode, not errorCode.
        let per_record = r#"{"statusCode":"DUPLICATE_USERNAME","message":"Duplicate Username.","fields":["Username"]}"#;
        let parsed: ApiError = serde_json::from_str(per_record).unwrap();
        assert_eq!(parsed.error_code, "DUPLICATE_USERNAME");
    }

    #[test]
    fn non_salesforce_bodies_become_http_errors_with_an_excerpt() {
        let e =
            SalesforceError::from_response(502, b"<html>\n<body>Bad   gateway</body></html>", None);
        assert!(
            matches!(&e, SalesforceError::Http { status: 502, excerpt } if excerpt == "<html> <body>Bad gateway</body></html>")
        );
        assert!(e.is_transient(false));
        let e = SalesforceError::from_response(
            404,
            br#"{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}"#,
            None,
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}
