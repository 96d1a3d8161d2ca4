//! Salesforce client errors as IDM errors, for every `/openidm/system` answer (the table is in
//! `system.rs`'s module comment).

use axum::http::StatusCode;
use serde_json::json;

use super::error::{ApiError, chain};
use crate::salesforce::{ErrorKind, SalesforceError};

/// A Salesforce client error as an IDM error (table in the module comment).
pub fn sf_error(e: SalesforceError) -> ApiError {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::NotFound => ApiError::not_found(message),
        ErrorKind::Rejected => {
            let errors = e.api_errors();
            let message = match errors.first() {
                Some(first) => format!(
                    "Salesforce rejected the request: {}: {}",
                    first.error_code, first.message
                ),
                None => message,
            };
            ApiError {
                status: StatusCode::BAD_REQUEST,
                message,
                detail: Some(json!({ "errors": errors })),
            }
        }
        ErrorKind::RateLimited => {
            tracing::warn!(error = %message, "Salesforce API request limit reached");
            unavailable(format!(
                "The Salesforce API request limit was reached; try again later ({message})"
            ))
        }
        ErrorKind::NeedsReauthorization | ErrorKind::BadCredentials | ErrorKind::NotAuthorized => {
            tracing::warn!(error = %message, "Salesforce connector unusable");
            unavailable(format!(
                "The Salesforce connector cannot connect: {message}"
            ))
        }
        ErrorKind::Transient => {
            tracing::warn!(error = %message, "Salesforce unavailable");
            unavailable(format!("Salesforce is unavailable: {message}"))
        }
        ErrorKind::Storage => {
            tracing::error!(error = %chain(&e), "Salesforce token store unavailable");
            unavailable("The repository is unavailable".to_owned())
        }
        ErrorKind::Other => match e {
            SalesforceError::InvalidArgument(m) => ApiError::bad_request(m),
            _ => {
                tracing::error!(error = %chain(&e), "unexpected answer from Salesforce");
                ApiError::new(StatusCode::BAD_GATEWAY, message)
            }
        },
    }
}

pub fn unavailable(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
}
