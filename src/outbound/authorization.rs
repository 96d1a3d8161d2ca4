//! Waiting out a Salesforce connector that needs an operator: the refresh token was revoked or
//! expired (`invalid_grant`), none was ever stored, or the client credentials were refused.
//! Every change would fail the same way, so the worker stops consuming instead of turning each
//! change into a sync failure; the change events wait in the broker's queues. The gate polls
//! the token store every few seconds and opens as soon as a new refresh token is stored
//! (`idm-sync salesforce authorize`, or any process sharing the database).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::salesforce::{ConnectorState, SalesforceClient};

/// The `reason` label of `idm_worker_paused` for this pause.
const REASON: &str = "salesforce_authorization";

/// Why the worker is paused, if it is; shared with the readiness endpoint.
#[derive(Debug, Clone, Default)]
pub struct PauseState(Arc<RwLock<Option<String>>>);

impl PauseState {
    pub fn reason(&self) -> Option<String> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, reason: Option<String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = reason;
    }
}

pub struct AuthorizationGate {
    client: SalesforceClient,
    poll: Duration,
    state: PauseState,
    metrics: Metrics,
}

impl AuthorizationGate {
    pub fn new(client: SalesforceClient, poll: Duration, metrics: Metrics) -> AuthorizationGate {
        AuthorizationGate {
            client,
            poll,
            state: PauseState::default(),
            metrics,
        }
    }

    pub fn state(&self) -> PauseState {
        self.state.clone()
    }

    /// Returns at once if the connector may work; otherwise waits until a new refresh token is
    /// stored. True when shutdown came first.
    pub async fn wait(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let Some(reason) = needs_operator(&self.client.state()) else {
            return false;
        };
        tracing::error!(
            %reason,
            poll = ?self.poll,
            "implicit sync PAUSED: Salesforce needs to be authorized again (run `idm-sync salesforce authorize`); \
             changes wait in the broker's queues, nothing is recorded as a failure, and the worker resumes by itself once a new token is stored"
        );
        self.state.set(Some(reason));
        self.metrics.worker_paused(REASON, true);
        let stopped = loop {
            match self.client.recheck_authorization().await {
                Ok(true) => break false,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the Salesforce token store"),
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break true,
                () = tokio::time::sleep(self.poll) => {}
            }
        };
        self.state.set(None);
        self.metrics.worker_paused(REASON, false);
        if !stopped {
            tracing::info!("a new Salesforce token is stored: implicit sync resumes");
        }
        stopped
    }
}

/// What stops the connector until an operator acts, if anything.
fn needs_operator(state: &ConnectorState) -> Option<String> {
    match state {
        ConnectorState::NeedsReauthorization { reason }
        | ConnectorState::BadCredentials { reason } => Some(reason.clone()),
        ConnectorState::NotAuthorized => {
            Some("Salesforce is not authorized: no refresh token is configured or stored".into())
        }
        ConnectorState::Unknown | ConnectorState::Ready => None,
    }
}
