//! A hook for whoever counts Salesforce calls (idm-sync's metrics): told the operation and outcome
//! of every HTTP request to Salesforce, REST or token endpoint, and every `Sforce-Limit-Info`
//! usage seen. The client stays ignorant of what the observer does with them.

use std::sync::Arc;

use crate::errors::SalesforceError;
use crate::limits::ApiUsage;

/// How one HTTP request to Salesforce ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Success,
    /// Worth repeating (503, row lock, timeout, connection failure).
    Transient,
    /// Refused for good (validation, not found, bad SOQL, anything unexpected).
    Permanent,
    /// `REQUEST_LIMIT_EXCEEDED`.
    RateLimited,
    /// An expired session (401), or a token endpoint refusing the refresh token or the client.
    Unauthorized,
}

impl CallOutcome {
    pub fn of<T>(result: &Result<T, SalesforceError>) -> CallOutcome {
        let Err(e) = result else {
            return CallOutcome::Success;
        };
        match e {
            SalesforceError::RequestLimitExceeded { .. } => CallOutcome::RateLimited,
            SalesforceError::NeedsReauthorization { .. }
            | SalesforceError::BadCredentials { .. }
            | SalesforceError::SecretsKey(_)
            | SalesforceError::NotAuthorized => CallOutcome::Unauthorized,
            e if e.is_invalid_session() => CallOutcome::Unauthorized,
            e if e.is_transient(true) => CallOutcome::Transient,
            _ => CallOutcome::Permanent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Transient => "transient",
            CallOutcome::Permanent => "permanent",
            CallOutcome::RateLimited => "rate_limited",
            CallOutcome::Unauthorized => "unauthorized",
        }
    }
}

pub trait CallObserver: Send + Sync {
    /// One request made. `operation`: `token`, `query`, `get`, `create`, `update`, `collections`,
    /// `updated`, `describe`, `limits`.
    fn call(&self, operation: &'static str, outcome: CallOutcome);
    /// The org's daily API usage, from the latest answer that carried it.
    fn api_usage(&self, usage: ApiUsage);
}

/// The observer of a client built without one.
struct Unobserved;

impl CallObserver for Unobserved {
    fn call(&self, _: &'static str, _: CallOutcome) {}
    fn api_usage(&self, _: ApiUsage) {}
}

/// A shareable observer, printable for the client's `Debug`.
#[derive(Clone)]
pub struct Observer(Arc<dyn CallObserver>);

impl Observer {
    pub fn new(observer: Arc<dyn CallObserver>) -> Observer {
        Observer(observer)
    }

    pub(crate) fn none() -> Observer {
        Observer(Arc::new(Unobserved))
    }

    pub(crate) fn call<T>(&self, what: &'static str, result: &Result<T, SalesforceError>) {
        self.0.call(operation(what), CallOutcome::of(result));
    }

    pub(crate) fn api_usage(&self, usage: Option<ApiUsage>) {
        if let Some(u) = usage {
            self.0.api_usage(u);
        }
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// A stable, low-cardinality name for a call's log name.
fn operation(what: &'static str) -> &'static str {
    match what {
        "query more" => "query",
        "collections create" | "collections update" => "collections",
        "oauth2/token" => "token",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_error_kind() {
        let ok: Result<(), SalesforceError> = Ok(());
        assert_eq!(CallOutcome::of(&ok), CallOutcome::Success);
        let limit: Result<(), _> = Err(SalesforceError::RequestLimitExceeded {
            message: "x".into(),
            usage: None,
        });
        assert_eq!(CallOutcome::of(&limit), CallOutcome::RateLimited);
        let expired: Result<(), _> = Err(SalesforceError::from_response(
            401,
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
            None,
        ));
        assert_eq!(CallOutcome::of(&expired), CallOutcome::Unauthorized);
        let revoked: Result<(), _> = Err(SalesforceError::NeedsReauthorization {
            error: "invalid_grant".into(),
            description: "expired access/refresh token".into(),
        });
        assert_eq!(CallOutcome::of(&revoked), CallOutcome::Unauthorized);
        let busy: Result<(), _> = Err(SalesforceError::from_response(503, b"[]", None));
        assert_eq!(CallOutcome::of(&busy), CallOutcome::Transient);
        let invalid: Result<(), _> = Err(SalesforceError::from_response(
            400,
            br#"[{"message":"bad","errorCode":"MALFORMED_QUERY"}]"#,
            None,
        ));
        assert_eq!(CallOutcome::of(&invalid), CallOutcome::Permanent);
    }

    #[test]
    fn operations_have_short_names() {
        assert_eq!(operation("query more"), "query");
        assert_eq!(operation("collections update"), "collections");
        assert_eq!(operation("create"), "create");
    }
}
