//! The UI's errors: a short page saying what went wrong; internal causes go to the log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::html;
use crate::managed::ManagedError;
use crate::recon::ReconError;
use crate::repo::RepoError;
use crate::salesforce::SalesforceError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("repository error")]
    Repo(#[from] RepoError),
    #[error("managed object error")]
    Managed(#[from] ManagedError),
    #[error("reconciliation error")]
    Recon(#[from] ReconError),
    #[error("Salesforce error")]
    Salesforce(#[from] SalesforceError),
    #[error("Salesforce connector")]
    Connector(#[source] crate::services::connectors::ConnectorError),
}

impl From<crate::services::connectors::ConnectorError> for AdminError {
    fn from(e: crate::services::connectors::ConnectorError) -> Self {
        use crate::services::connectors::ConnectorError;
        match e {
            ConnectorError::NotConfigured(_) => AdminError::NotFound(e.to_string()),
            other => AdminError::Connector(other),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            AdminError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            AdminError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            AdminError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m.clone()),
            _ => {
                tracing::error!(error = %crate::telemetry::error_chain(&self), "admin UI request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong; the server log has the details.".to_owned(),
                )
            }
        };
        let body = html! {
            p.error #error { (message) }
            p { a href="/admin" { "Back to the dashboard" } }
        };
        html::bare_page(status, "Error", body)
    }
}

/// Unknown paths under `/admin` (for a logged-in user; others are sent to the log-in page).
pub async fn not_found() -> AdminError {
    AdminError::NotFound("No such page.".into())
}
