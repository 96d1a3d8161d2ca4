//! The Salesforce connector as an operator drives it: its enabled state and the OAuth
//! web-server flow that replaces its credentials. A new authorization is kept *pending*
//! (`repo::admin_oauth_pending`: keyed by the OAuth `state`, tied to the session that started
//! it, the consumer secret sealed) until Salesforce redirects back with a code; only a
//! successful code exchange with those very credentials saves them, so a typo never breaks a
//! working connector.

use reqwest::Url;

use super::AppState;
use crate::repo::{RepoError, admin_oauth_pending};
use crate::salesforce::{Credentials, SalesforceClient, SalesforceError, Secret, pkce_verifier};
use crate::secrets::SecretsError;

/// The pending authorization's sealed columns, bound into their values.
const PENDING_SECRET: &str = "admin_oauth_pending.client_secret";
const PENDING_VERIFIER: &str = "admin_oauth_pending.code_verifier";

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("No Salesforce connector {0:?} is configured (conf/provisioner.openicf-{0}.json).")]
    NotConfigured(String),
    #[error("stored login URL: {0}")]
    BadStoredUrl(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Salesforce(#[from] SalesforceError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

/// An authorization Salesforce has redirected back for, taken out of the pending ones.
#[derive(Debug)]
pub struct PendingAuthorization {
    /// The admin session that started it.
    pub session_id: String,
    /// The connector it authorizes.
    pub system: String,
    pub credentials: Credentials,
    pub redirect_uri: String,
    /// The PKCE verifier whose challenge the authorize URL carried.
    pub verifier: Secret,
}

/// The configured connector.
pub struct Connector<'a> {
    state: &'a AppState,
    client: &'a SalesforceClient,
}

impl AppState {
    /// The Salesforce connector of system `name`, when `conf/` configures it.
    pub fn connector(&self, name: &str) -> Result<Connector<'_>, ConnectorError> {
        let client = self
            .connectors
            .get(name)
            .ok_or_else(|| ConnectorError::NotConfigured(name.to_owned()))?;
        Ok(Connector {
            state: self,
            client,
        })
    }

    /// Takes the pending authorization of `oauth_state` out (single use, whatever the caller
    /// does next); `None` when it is unknown, used or older than 15 minutes. Its `system`
    /// names the connector to complete it with.
    pub async fn take_pending(
        &self,
        oauth_state: &str,
    ) -> Result<Option<PendingAuthorization>, ConnectorError> {
        let pool = self.managed.pool();
        // Expired ones hold a secret for nothing.
        admin_oauth_pending::purge_expired(pool).await?;
        let Some(pending) = admin_oauth_pending::take(pool, oauth_state).await? else {
            return Ok(None);
        };
        let login_url = Url::parse(&pending.login_url)
            .map_err(|e| ConnectorError::BadStoredUrl(e.to_string()))?;
        let secret = self
            .sealer
            .open(PENDING_SECRET, &pending.sealed_client_secret)?;
        let verifier = self
            .sealer
            .open(PENDING_VERIFIER, &pending.sealed_code_verifier)?;
        Ok(Some(PendingAuthorization {
            session_id: pending.session_id,
            system: pending.system_name,
            credentials: Credentials {
                login_url,
                client_id: pending.client_id,
                client_secret: Secret::new(secret),
            },
            redirect_uri: pending.redirect_uri,
            verifier: Secret::new(verifier),
        }))
    }
}

impl<'a> Connector<'a> {
    pub fn client(&self) -> &'a SalesforceClient {
        self.client
    }

    /// Saves the enabled state for every role, overriding the provisioner file's `enabled`.
    pub async fn set_enabled(&self, on: bool) -> Result<(), ConnectorError> {
        self.client.set_enabled(on).await?;
        tracing::info!(
            system = self.client.system_name(),
            enabled = on,
            "Salesforce connector enabled state set"
        );
        Ok(())
    }

    /// The consumer secret to use when the operator left the field empty: the saved one, else
    /// the provisioner file's.
    pub async fn current_secret(&self) -> Result<Secret, ConnectorError> {
        let system = &self.client.config().system_name;
        Ok(
            match self.client.token_store().load_credentials(system).await? {
                Some(c) => c.client_secret,
                None => self.client.config().client_secret.clone(),
            },
        )
    }

    /// Keeps `credentials` pending under `oauth_state` for the session `session_id`, and
    /// returns the org's authorize URL to send the browser to.
    pub async fn begin_authorization(
        &self,
        credentials: &Credentials,
        oauth_state: &str,
        session_id: &str,
        redirect_uri: &str,
    ) -> Result<Url, ConnectorError> {
        let pool = self.state.managed.pool();
        let sealed_secret = self
            .state
            .sealer
            .seal(PENDING_SECRET, credentials.client_secret.expose())?;
        let verifier = pkce_verifier();
        let sealed_verifier = self
            .state
            .sealer
            .seal(PENDING_VERIFIER, verifier.expose())?;
        admin_oauth_pending::purge_expired(pool).await?;
        admin_oauth_pending::insert(
            pool,
            &admin_oauth_pending::NewPending {
                state: oauth_state,
                session_id,
                system_name: &self.client.config().system_name,
                login_url: credentials.login_url.as_str(),
                client_id: &credentials.client_id,
                sealed_client_secret: &sealed_secret,
                redirect_uri,
                sealed_code_verifier: &sealed_verifier,
            },
        )
        .await?;
        Ok(crate::salesforce::authorize_url(
            &credentials.apply(self.client.config()),
            redirect_uri,
            oauth_state,
            &verifier,
        )?)
    }

    /// Exchanges `code` with the pending credentials. On success the client saves them with
    /// the refresh token and the connector is enabled (authorizing is how an operator turns it
    /// on); refused, nothing is saved and the previous settings stay in use.
    pub async fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        code: &str,
    ) -> Result<Completion, ConnectorError> {
        let exchanged = self
            .client
            .authorize_with_credentials(
                &pending.credentials,
                code,
                &pending.redirect_uri,
                &pending.verifier,
            )
            .await;
        if let Err(e) = exchanged {
            tracing::warn!(system = self.client.system_name(), error = %e, "Salesforce authorization failed");
            return Ok(Completion::Refused(e));
        }
        tracing::info!(
            system = self.client.system_name(),
            "Salesforce connector authorized"
        );
        self.client.set_enabled(true).await?;
        Ok(Completion::Authorized)
    }
}

/// How a code exchange ended.
#[derive(Debug)]
pub enum Completion {
    /// The credentials and the refresh token are saved; the connector is enabled.
    Authorized,
    /// Salesforce refused the code or the credentials: nothing was saved.
    Refused(SalesforceError),
}
