//! Waiting out a Salesforce connector that needs an operator: the refresh token was revoked or
//! expired (`invalid_grant`), none was ever stored, or the client credentials were refused.
//! Every change would fail the same way, so the worker stops consuming instead of turning each
//! change into a sync failure; the change events wait in the broker's queues. The gate polls
//! the token store every few seconds and opens as soon as a new refresh token is stored
//! (`idm-sync salesforce authorize`, or any process sharing the database).
//!
//! A connector disabled (in the Admin UI, or by its provisioner file) pauses the worker the
//! same way until it is enabled again.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::salesforce::{ConnectorState, SalesforceClient};

/// The `reason` label of `idm_worker_paused` for this pause.
const REASON: &str = "salesforce_authorization";
/// The `reason` label while the connector is disabled.
const DISABLED: &str = "connector_disabled";
/// How long a read of the enabled state serves batches before the next read.
const ENABLED_TTL: Duration = Duration::from_secs(2);

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
    enabled_seen: Mutex<Option<(Instant, bool)>>,
}

impl AuthorizationGate {
    pub fn new(client: SalesforceClient, poll: Duration, metrics: Metrics) -> AuthorizationGate {
        AuthorizationGate {
            client,
            poll,
            state: PauseState::default(),
            metrics,
            enabled_seen: Mutex::new(None),
        }
    }

    /// Whether the connector is enabled, read at most every couple of seconds.
    pub async fn enabled(&self) -> bool {
        let seen = *self.enabled_seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, on)) = seen
            && at.elapsed() < ENABLED_TTL
        {
            return on;
        }
        self.read_enabled().await
    }

    async fn read_enabled(&self) -> bool {
        let on = self.client.enabled().await;
        *self.enabled_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), on));
        on
    }

    /// Waits while the connector is disabled. True when shutdown came first.
    async fn wait_enabled(&self, stop: &mut watch::Receiver<bool>) -> bool {
        if self.read_enabled().await {
            return false;
        }
        tracing::warn!(
            system = self.client.system_name(),
            poll = ?self.poll,
            "implicit sync PAUSED: the Salesforce connector is disabled; changes wait in the broker's queues and the worker resumes once it is enabled"
        );
        self.state
            .set(Some("the Salesforce connector is disabled".to_owned()));
        self.metrics
            .worker_paused(self.client.system_name(), DISABLED, true);
        let stopped = loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break true,
                () = tokio::time::sleep(self.poll) => {}
            }
            if self.read_enabled().await {
                break false;
            }
        };
        self.state.set(None);
        self.metrics
            .worker_paused(self.client.system_name(), DISABLED, false);
        if !stopped {
            tracing::info!(
                system = self.client.system_name(),
                "the Salesforce connector is enabled: implicit sync resumes"
            );
        }
        stopped
    }

    pub fn state(&self) -> PauseState {
        self.state.clone()
    }

    /// Returns at once if the connector may work; otherwise waits until it is enabled and a new
    /// refresh token is stored. True when shutdown came first.
    pub async fn wait(&self, stop: &mut watch::Receiver<bool>) -> bool {
        if self.wait_enabled(stop).await {
            return true;
        }
        let state = self.client.state();
        let Some(reason) = needs_operator(&state) else {
            return false;
        };
        if matches!(state, ConnectorState::UnreadableSecrets { .. }) {
            tracing::error!(
                system = self.client.system_name(),
                %reason,
                "implicit sync PAUSED: this worker's secrets key cannot open the stored Salesforce secrets; \
                 restart it with the deployment's key (IDM_SECRETS_KEY or --secrets-key-file); changes wait in the broker's queues and nothing is recorded as a failure"
            );
        } else {
            tracing::error!(
                system = self.client.system_name(),
                %reason,
                poll = ?self.poll,
                "implicit sync PAUSED: Salesforce needs to be authorized again (run `idm-sync salesforce authorize`); \
                 changes wait in the broker's queues, nothing is recorded as a failure, and the worker resumes by itself once a new token is stored"
            );
        }
        self.state.set(Some(reason));
        self.metrics
            .worker_paused(self.client.system_name(), REASON, true);
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
        self.metrics
            .worker_paused(self.client.system_name(), REASON, false);
        if !stopped {
            tracing::info!(
                system = self.client.system_name(),
                "a new Salesforce token is stored: implicit sync resumes"
            );
        }
        stopped
    }
}

/// What stops the connector until an operator acts, if anything.
fn needs_operator(state: &ConnectorState) -> Option<String> {
    match state {
        ConnectorState::NeedsReauthorization { reason }
        | ConnectorState::BadCredentials { reason }
        | ConnectorState::UnreadableSecrets { reason } => Some(reason.clone()),
        ConnectorState::NotAuthorized => {
            Some("Salesforce is not authorized: no refresh token is configured or stored".into())
        }
        ConnectorState::Unknown | ConnectorState::Ready => None,
    }
}
