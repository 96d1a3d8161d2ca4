//! What can go wrong talking to the Pub/Sub API, classified for the subscriber's decisions:
//! refresh and retry, resubscribe from the latest event (the stored replay id is gone), back
//! off, or stop.

use crate::errors::SalesforceError;

/// The trailer in which the Pub/Sub API names the cause of an error.
const ERROR_CODE_TRAILER: &str = "error-code";

#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    #[error("the Pub/Sub API endpoint {url:?} is not usable: {reason}")]
    Endpoint { url: String, reason: String },
    #[error("cannot reach the Pub/Sub API at {url}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The session or the identity the calls authenticate with.
    #[error(transparent)]
    Salesforce(#[from] SalesforceError),
    /// The stored replay id is no longer retained (older than the retention window) or not
    /// valid for this topic: only a subscription from the latest event, with a full
    /// reconciliation for what was missed, can go on.
    #[error("Pub/Sub API {call}: the replay id is not valid or no longer retained ({message})")]
    ReplayIdInvalid { call: &'static str, message: String },
    #[error("Pub/Sub API {call}: {code:?}: {message}{}", error_code.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default())]
    Status {
        call: &'static str,
        code: tonic::Code,
        message: String,
        error_code: Option<String>,
    },
    #[error("Pub/Sub API: cannot decode an event with schema {schema_id}: {reason}")]
    Decode { schema_id: String, reason: String },
    #[error("Pub/Sub API: schema {schema_id} is not usable: {reason}")]
    Schema { schema_id: String, reason: String },
}

impl PubSubError {
    pub(crate) fn from_status(call: &'static str, status: &tonic::Status) -> PubSubError {
        let error_code = status
            .metadata()
            .get(ERROR_CODE_TRAILER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let message = status.message().to_owned();
        let replay = error_code
            .as_deref()
            .is_some_and(|c| c.contains("replayid"));
        if replay {
            return PubSubError::ReplayIdInvalid { call, message };
        }
        PubSubError::Status {
            call,
            code: status.code(),
            message,
            error_code,
        }
    }

    /// The session was refused: a refreshed one may be accepted.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            PubSubError::Status {
                code: tonic::Code::Unauthenticated,
                ..
            }
        )
    }

    /// Worth a new stream after a pause: the connection, the service or the stream went away.
    pub fn is_transient(&self) -> bool {
        match self {
            PubSubError::Connect { .. } => true,
            PubSubError::Status { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Aborted
                    | tonic::Code::Internal
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
            ),
            PubSubError::Salesforce(e) => e.is_transient(true),
            _ => false,
        }
    }
}
