//! The Pub/Sub API's errors: a gRPC status, a message ending in `rpcId: <id>`, and the
//! Salesforce error code in the trailer `error-code` (Pub/Sub API guide, "Handle Errors").
//! Codes are the documented `sfdc.platform.eventbus.grpc.*` ones; which gRPC status goes with
//! each is documented for a few only (README, "Pub/Sub API").

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PubSubError {
    /// The `accesstoken`, `instanceurl` or `tenantid` header is missing or blank.
    #[error(
        "The authentication headers are missing or invalid. Provide accesstoken, instanceurl and tenantid via metadata headers."
    )]
    AuthHeaders,
    /// An unknown, expired or revoked token, or a tenant that is not the token's org.
    #[error(
        "An authentication exception occurred. Provide valid authentication via metadata headers."
    )]
    Auth,
    #[error("The topic name can't be blank.")]
    TopicBlank,
    #[error(
        "The topic information for org {tenant} and topic {topic} not found. Ensure the topic name is correct and that the topic exists."
    )]
    TopicNotFound { tenant: String, topic: String },
    #[error("Schema validation failed. The schema ID can't be blank.")]
    SchemaBlank,
    #[error(
        "An error occurred while getting the schema {id}. Ensure the credentials and schema ID are correct."
    )]
    SchemaNotFound { id: String },
    #[error(
        "The Replay ID validation failed. Ensure that the replay_id field value in FetchRequest is valid and refers to an event that is within the retention window."
    )]
    ReplayCorrupted,
    #[error(
        "The Replay ID validation failed. A replay_id is required when replay_preset is CUSTOM."
    )]
    ReplayMissing,
    #[error("The number of requested events must be greater than zero.")]
    RequestedInvalid,
    #[error("The topic name {got} doesn't match the topic of this subscription, {first}.")]
    TopicMismatch { first: String, got: String },
    #[error("The Pub/Sub API service is unavailable.")]
    Unavailable,
}

impl PubSubError {
    pub fn code(&self) -> Code {
        match self {
            PubSubError::AuthHeaders | PubSubError::Auth => Code::Unauthenticated,
            PubSubError::TopicNotFound { .. } | PubSubError::SchemaNotFound { .. } => {
                Code::NotFound
            }
            PubSubError::Unavailable => Code::Unavailable,
            PubSubError::TopicBlank
            | PubSubError::SchemaBlank
            | PubSubError::ReplayCorrupted
            | PubSubError::ReplayMissing
            | PubSubError::RequestedInvalid
            | PubSubError::TopicMismatch { .. } => Code::InvalidArgument,
        }
    }

    /// The value of the `error-code` trailer.
    pub fn error_code(&self) -> &'static str {
        match self {
            PubSubError::AuthHeaders => "sfdc.platform.eventbus.grpc.service.auth.headers.invalid",
            PubSubError::Auth => "sfdc.platform.eventbus.grpc.service.auth.error",
            PubSubError::TopicBlank => "sfdc.platform.eventbus.grpc.topic.validation.empty",
            PubSubError::TopicNotFound { .. } => "sfdc.platform.eventbus.grpc.topic.not.found",
            PubSubError::SchemaBlank => "sfdc.platform.eventbus.grpc.schema.validation.failed",
            PubSubError::SchemaNotFound { .. } => {
                "sfdc.platform.eventbus.grpc.schema.meta.permission"
            }
            PubSubError::ReplayCorrupted => {
                "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
            }
            PubSubError::ReplayMissing => {
                "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
            }
            PubSubError::RequestedInvalid => {
                "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid"
            }
            PubSubError::TopicMismatch { .. } => {
                "sfdc.platform.eventbus.grpc.subscription.fetch.topic.mismatch"
            }
            PubSubError::Unavailable => "sfdc.platform.eventbus.grpc.service.unavailable",
        }
    }

    /// The status a call ends with: message `… rpcId: <id>`, trailers `error-code` and `rpc-id`.
    pub fn into_status(self, rpc_id: &str) -> Status {
        let mut trailers = MetadataMap::new();
        trailers.insert("error-code", MetadataValue::from_static(self.error_code()));
        if let Ok(v) = rpc_id.parse() {
            trailers.insert("rpc-id", v);
        }
        Status::with_metadata(self.code(), format!("{self} rpcId: {rpc_id}"), trailers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_the_code_and_the_rpc_id() {
        let s = PubSubError::ReplayCorrupted.into_status("abc-123");
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().ends_with(" rpcId: abc-123"));
        assert_eq!(
            s.metadata().get("error-code").unwrap(),
            "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
        );
        assert_eq!(s.metadata().get("rpc-id").unwrap(), "abc-123");
        assert_eq!(
            PubSubError::Auth.into_status("x").code(),
            Code::Unauthenticated
        );
    }
}
