//! The access token shared by every task of the process, and its single-flight refresh.
//!
//! Each session has a generation number. A caller whose call got 401 `INVALID_SESSION_ID` asks for
//! a refresh *of the generation it used*: the first such caller refreshes (under an async mutex),
//! the others wait on the mutex, find a newer generation, and use it without a token call.
//! `invalid_grant` / `invalid_client` are remembered: later callers get the same typed error at
//! once, without calling the token endpoint, until a new refresh token is authorized.
//!
//! Every token call first re-reads the store: credentials saved from the Admin UI
//! ([`super::credentials`]) replace the configured ones, and a refresh token stored since this
//! process last looked (an authorization, or a rotation by another process) replaces its own.
//! Token calls are rare (first use, a 401), so the two reads cost nothing that matters.

use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;
use reqwest::Url;
use tokio::sync::Mutex;

use super::config::{ClientConfig, Secret};
use super::credentials::Credentials;
use super::errors::SalesforceError;
use super::http::Http;
use super::oauth::{self, TokenGrant};
use super::retry::with_retry;
use super::token_store::{self, TokenStore};

/// An access token and where to use it.
#[derive(Debug)]
pub(crate) struct Session {
    pub access_token: Secret,
    pub instance_url: Url,
    pub generation: u64,
}

/// Whether the connector can work, as the test action reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorState {
    /// No token call made yet.
    Unknown,
    /// The last token call succeeded.
    Ready,
    /// No refresh token configured or stored: run the authorize flow.
    NotAuthorized,
    /// The refresh token was refused (`invalid_grant`): run the authorize flow again.
    NeedsReauthorization { reason: String },
    /// The consumer key/secret were refused (`invalid_client`): fix the configuration.
    BadCredentials { reason: String },
    /// This process's secrets key cannot open the stored secrets: restart it with the
    /// deployment's key.
    UnreadableSecrets { reason: String },
}

#[derive(Debug, Default)]
struct RefreshState {
    /// Loaded (store or configuration) on the first refresh.
    refresh_token: Option<Secret>,
    loaded: bool,
    generation: u64,
    /// A permanent failure of the current refresh token, replayed without a token call.
    failed: Option<SalesforceError>,
    /// SHA-256 of the stored refresh token when this process last read or wrote it: a
    /// different one in the store was put there by someone else, and is newer.
    last_stored: Option<String>,
}

#[derive(Debug)]
pub(crate) struct SessionManager {
    current: RwLock<Option<Arc<Session>>>,
    refresh: Mutex<RefreshState>,
    state: RwLock<ConnectorState>,
    store: TokenStore,
    /// Hash of the configured refresh token, written next to every stored token.
    conf_hash: Option<String>,
    /// Credentials saved at run time, overriding the configured ones.
    credentials: RwLock<Option<Credentials>>,
}

impl SessionManager {
    pub fn new(cfg: &ClientConfig, store: TokenStore) -> SessionManager {
        SessionManager {
            current: RwLock::new(None),
            refresh: Mutex::new(RefreshState::default()),
            state: RwLock::new(ConnectorState::Unknown),
            store,
            conf_hash: cfg.refresh_token.as_ref().map(Secret::sha256_hex),
            credentials: RwLock::new(None),
        }
    }

    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    pub fn state(&self) -> ConnectorState {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_state(&self, s: ConnectorState) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// `cfg` with the credentials saved at run time, if any.
    pub fn effective(&self, cfg: &ClientConfig) -> ClientConfig {
        match &*self.credentials.read().unwrap_or_else(|p| p.into_inner()) {
            Some(c) => c.apply(cfg),
            None => cfg.clone(),
        }
    }

    fn set_credentials(&self, c: Option<Credentials>) {
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = c;
    }

    /// Where the current session's calls go, if there is a session.
    pub fn instance_url(&self) -> Option<Url> {
        self.current().map(|s| s.instance_url.clone())
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn publish(&self, s: Option<Arc<Session>>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// The current session, obtaining one first if there is none.
    pub async fn session(
        &self,
        http: &Http,
        cfg: &ClientConfig,
    ) -> Result<Arc<Session>, SalesforceError> {
        match self.current() {
            Some(s) => Ok(s),
            None => self.refresh(http, cfg, None).await,
        }
    }

    /// Replaces the session of generation `stale` (or obtains a first one when `None`), unless
    /// another caller already did: then that newer session is returned without a token call.
    ///
    /// Boxed as a `Send` future: callers sit inside retry closures and streams, where the compiler
    /// cannot otherwise prove the nested future `Send` for every lifetime.
    pub fn refresh<'a>(
        &'a self,
        http: &'a Http,
        cfg: &'a ClientConfig,
        stale: Option<u64>,
    ) -> BoxFuture<'a, Result<Arc<Session>, SalesforceError>> {
        Box::pin(self.refresh_inner(http, cfg, stale))
    }

    async fn refresh_inner(
        &self,
        http: &Http,
        cfg: &ClientConfig,
        stale: Option<u64>,
    ) -> Result<Arc<Session>, SalesforceError> {
        let mut st = self.refresh.lock().await;
        if let Some(cur) = self.current()
            && stale != Some(cur.generation)
        {
            return Ok(cur);
        }
        let loaded = async {
            let credentials = self.store.load_credentials(&cfg.system_name).await?;
            Ok((credentials, self.store.load(&cfg.system_name).await?))
        };
        let (credentials, stored) = match loaded.await {
            Ok(found) => found,
            Err(e) => {
                self.fail(&mut st, &e, cfg);
                return Err(e);
            }
        };
        self.set_credentials(credentials);
        let stored_hash = stored.as_ref().map(|s| s.refresh_token.sha256_hex());
        if !st.loaded {
            match token_store::choose_refresh_token(cfg.refresh_token.as_ref(), stored) {
                Some((token, source)) => {
                    tracing::info!(system = %cfg.system_name, ?source, "Salesforce refresh token loaded");
                    st.refresh_token = Some(token);
                }
                None => st.refresh_token = None,
            }
            st.last_stored = stored_hash;
            st.loaded = true;
        } else if stored_hash.is_some() && stored_hash != st.last_stored {
            if let Some((token, token_store::TokenSource::Store)) =
                token_store::choose_refresh_token(cfg.refresh_token.as_ref(), stored)
            {
                tracing::info!(system = %cfg.system_name, "a newer stored Salesforce refresh token replaces this process's");
                st.refresh_token = Some(token);
                st.failed = None;
            }
            st.last_stored = stored_hash;
        }
        if let Some(e) = &st.failed {
            return Err(e.clone());
        }
        let effective = self.effective(cfg);
        let cfg = &effective;
        let Some(refresh_token) = st.refresh_token.clone() else {
            self.set_state(ConnectorState::NotAuthorized);
            return Err(SalesforceError::NotAuthorized);
        };
        let token = &refresh_token;
        let grant: BoxFuture<'_, Result<TokenGrant, SalesforceError>> =
            Box::pin(with_retry(&cfg.retry, true, "oauth2/token", move || {
                oauth::refresh(http, cfg, token)
            }));
        let grant = grant.await;
        let grant = match grant {
            Ok(g) => g,
            Err(e) => {
                self.fail(&mut st, &e, cfg);
                return Err(e);
            }
        };
        let session = self.install(&mut st, cfg, grant).await?;
        tracing::debug!(system = %cfg.system_name, generation = session.generation, "Salesforce access token refreshed");
        Ok(session)
    }

    /// Records a failed refresh: permanent failures mark the connector and are remembered.
    fn fail(&self, st: &mut RefreshState, e: &SalesforceError, cfg: &ClientConfig) {
        let state = match e {
            SalesforceError::NeedsReauthorization { .. } => ConnectorState::NeedsReauthorization {
                reason: e.to_string(),
            },
            SalesforceError::BadCredentials { .. } => ConnectorState::BadCredentials {
                reason: e.to_string(),
            },
            SalesforceError::SecretsKey(_) => ConnectorState::UnreadableSecrets {
                reason: e.to_string(),
            },
            _ => return,
        };
        tracing::error!(system = %cfg.system_name, error = %e, "Salesforce connector needs attention; no further token calls until re-authorized");
        st.failed = Some(e.clone());
        self.publish(None);
        self.set_state(state);
    }

    /// Stores a rotated refresh token durably, then publishes the new access token.
    async fn install(
        &self,
        st: &mut RefreshState,
        cfg: &ClientConfig,
        grant: TokenGrant,
    ) -> Result<Arc<Session>, SalesforceError> {
        let instance = match grant.instance_url.as_deref() {
            Some(u) => Url::parse(u).map_err(|e| {
                SalesforceError::InvalidResponse(format!("instance_url {u:?}: {e}"))
            })?,
            None => cfg.instance_url.clone().ok_or_else(|| {
                SalesforceError::InvalidResponse(
                    "the token answer has no instance_url and none is configured".into(),
                )
            })?,
        };
        if let Some(rotated) = grant.refresh_token {
            // The old refresh token is dead from now on: keep the new one in memory first (so a
            // failed write is retried with it), then make it durable before any use.
            st.refresh_token = Some(rotated.clone());
            self.store
                .save(
                    &cfg.system_name,
                    &rotated,
                    Some(instance.as_str()),
                    self.conf_hash.as_deref(),
                )
                .await?;
            st.last_stored = Some(rotated.sha256_hex());
        }
        st.generation += 1;
        st.failed = None;
        let session = Arc::new(Session {
            access_token: grant.access_token,
            instance_url: instance,
            generation: st.generation,
        });
        self.publish(Some(session.clone()));
        self.set_state(ConnectorState::Ready);
        Ok(session)
    }

    /// After a permanent failure, or when no refresh token was found: if the store now holds
    /// another refresh token (the authorize flow ran, maybe in another process), forget the
    /// failure so the next call tries it.
    pub async fn recheck(&self, cfg: &ClientConfig) -> Result<bool, SalesforceError> {
        let mut st = self.refresh.lock().await;
        let never_authorized = st.loaded && st.refresh_token.is_none();
        if st.failed.is_none() && !never_authorized {
            return Ok(false);
        }
        let stored = self.store.load(&cfg.system_name).await?;
        match stored {
            Some(s) if Some(&s.refresh_token) != st.refresh_token.as_ref() => {
                st.last_stored = Some(s.refresh_token.sha256_hex());
                st.refresh_token = Some(s.refresh_token);
                st.failed = None;
                self.set_state(ConnectorState::Unknown);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The web-server flow's code exchange: stores the new refresh token and starts using it.
    pub async fn authorize(
        &self,
        http: &Http,
        cfg: &ClientConfig,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenGrant, SalesforceError> {
        self.authorize_with(http, cfg, None, code, redirect_uri)
            .await
    }

    /// The code exchange with `credentials` in place of the configured ones; on success the
    /// credentials are stored (before the token) and used from then on.
    pub async fn authorize_with(
        &self,
        http: &Http,
        cfg: &ClientConfig,
        credentials: Option<&Credentials>,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenGrant, SalesforceError> {
        let effective = match credentials {
            Some(c) => c.apply(cfg),
            None => self.effective(cfg),
        };
        let cfg = &effective;
        let grant = oauth::exchange_code(http, cfg, code, redirect_uri).await?;
        let Some(refresh_token) = grant.refresh_token.clone() else {
            return Err(SalesforceError::InvalidResponse(
                "the code exchange returned no refresh_token: add the refresh_token scope to the connected app".into(),
            ));
        };
        let mut st = self.refresh.lock().await;
        if let Some(c) = credentials {
            self.store.save_credentials(&cfg.system_name, c).await?;
            self.set_credentials(Some(c.clone()));
        }
        st.loaded = true;
        self.install(&mut st, cfg, grant.clone()).await?;
        st.refresh_token = Some(refresh_token);
        Ok(grant)
    }
}
