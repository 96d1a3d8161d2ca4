//! The access token shared by every task of the process, and its single-flight refresh, within
//! the process and across every process sharing the database.
//!
//! Each session has a generation number. A caller whose call got 401 `INVALID_SESSION_ID` asks for
//! a refresh *of the generation it used*: the first such caller refreshes (under an async mutex),
//! the others wait on the mutex, find a newer generation, and use it without a token call.
//! `invalid_grant` / `invalid_client` are remembered: later callers get the same typed error at
//! once, without calling the token endpoint, until a new refresh token is authorized.
//!
//! Across processes, the refresh happens under the connector's refresh lock in Postgres
//! ([`TokenStore::lock_refresh`], held across the token call only). Under it the process
//! re-reads the store: credentials saved from the Admin UI ([`crate::credentials`]) replace the
//! configured ones, a refresh token stored since it last looked (an authorization, or a rotation
//! by another process) replaces its own, and an access token stored by another process's
//! refresh, if it is not the one that was just refused, is used as it is, with no token call.
//! Otherwise it calls the token endpoint and stores the rotated refresh token and the new access
//! token before releasing the lock, so the next process finds them. With refresh-token rotation
//! on, this is what keeps two processes from presenting the same refresh token (the second
//! would get `invalid_grant`, and Salesforce would revoke the token family). A memory store
//! (one process, tests and tools) shares nothing and takes no lock.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::Url;
use tokio::sync::Mutex;

use crate::config::Credentials;
use crate::config::{ClientConfig, Secret};
use crate::errors::SalesforceError;
use crate::http::Http;
use crate::oauth::{self, TokenGrant};
use crate::retry::with_retry;
use crate::token_store::{self, RefreshLock, TokenStore};

/// An access token and where to use it.
#[derive(Debug)]
pub(crate) struct Session {
    pub access_token: Secret,
    pub instance_url: Url,
    pub generation: u64,
}

/// What [`SessionManager::refresh`] gives its caller.
#[derive(Debug)]
pub(crate) struct Refreshed {
    pub session: Arc<Session>,
    /// Whether this caller's refresh obtained it from the token endpoint. Otherwise another
    /// task or process did, earlier, and it may have expired since: a 401 on it is worth
    /// another refresh, where a 401 on a token just obtained is not.
    pub token_call: bool,
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
            None => Ok(self.refresh(http, cfg, None).await?.session),
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
    ) -> BoxFuture<'a, Result<Refreshed, SalesforceError>> {
        Box::pin(self.refresh_inner(http, cfg, stale))
    }

    async fn refresh_inner(
        &self,
        http: &Http,
        cfg: &ClientConfig,
        stale: Option<u64>,
    ) -> Result<Refreshed, SalesforceError> {
        let mut st = self.refresh.lock().await;
        let current = self.current();
        if let Some(cur) = &current
            && stale != Some(cur.generation)
        {
            return Ok(Refreshed {
                session: cur.clone(),
                token_call: false,
            });
        }
        // The token that was refused: a shared one equal to it is no better.
        let refused = current.map(|c| c.access_token.sha256_hex());
        let mut lock = match self
            .store
            .lock_refresh(&cfg.system_name, lock_wait(cfg))
            .await
        {
            Ok(lock) => lock,
            Err(e) => {
                self.fail(&mut st, &e, cfg);
                return Err(e);
            }
        };
        let loaded = async {
            let credentials = self.store.load_credentials(&cfg.system_name).await?;
            let stored = lock.token().await?;
            Ok((credentials, stored, lock.session().await?))
        };
        let (credentials, stored, shared) = match loaded.await {
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
        if let Some(shared) = shared
            && shared.refresh_token_sha256 == refresh_token.sha256_hex()
            && Some(shared.access_token.sha256_hex()) != refused
        {
            // Another process refreshed since this one's token was issued (or, at first use,
            // before this one started): its token serves, with no token call.
            lock.release().await?;
            return Ok(Refreshed {
                session: self.adopt(&mut st, cfg, shared)?,
                token_call: false,
            });
        }
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
        let session = self.install(&mut st, cfg, grant, lock).await?;
        tracing::debug!(system = %cfg.system_name, generation = session.generation, "Salesforce access token refreshed");
        Ok(Refreshed {
            session,
            token_call: true,
        })
    }

    /// Uses the access token another process stored.
    fn adopt(
        &self,
        st: &mut RefreshState,
        cfg: &ClientConfig,
        shared: token_store::StoredSession,
    ) -> Result<Arc<Session>, SalesforceError> {
        let instance = Url::parse(&shared.instance_url)
            .map_err(|e| SalesforceError::TokenStore(format!("stored instance_url: {e}")))?;
        st.generation += 1;
        let session = Arc::new(Session {
            access_token: shared.access_token,
            instance_url: instance,
            generation: st.generation,
        });
        self.publish(Some(session.clone()));
        self.set_state(ConnectorState::Ready);
        tracing::debug!(system = %cfg.system_name, stored_generation = shared.generation, "Salesforce access token shared by another process used");
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

    /// Stores a rotated refresh token and the new access token under the refresh lock, releases
    /// it (which makes them durable), then publishes the new access token.
    async fn install(
        &self,
        st: &mut RefreshState,
        cfg: &ClientConfig,
        grant: TokenGrant,
        mut lock: RefreshLock<'_>,
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
        let rotated = grant.refresh_token.clone();
        if let Some(rotated) = &rotated {
            // The old refresh token is dead from now on: keep the new one in memory first (so a
            // failed write is retried with it), then make it durable before any use.
            st.refresh_token = Some(rotated.clone());
            lock.save_token(rotated, Some(instance.as_str()), self.conf_hash.as_deref())
                .await?;
        }
        if let Some(current) = &st.refresh_token {
            lock.save_session(
                &grant.access_token,
                instance.as_str(),
                &current.sha256_hex(),
                grant.issued_at.unwrap_or_else(chrono::Utc::now),
            )
            .await?;
        }
        lock.release().await?;
        if let Some(rotated) = &rotated {
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
        verifier: &Secret,
    ) -> Result<TokenGrant, SalesforceError> {
        self.authorize_with(http, cfg, None, code, redirect_uri, verifier)
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
        verifier: &Secret,
    ) -> Result<TokenGrant, SalesforceError> {
        let effective = match credentials {
            Some(c) => c.apply(cfg),
            None => self.effective(cfg),
        };
        let cfg = &effective;
        let grant = oauth::exchange_code(http, cfg, code, redirect_uri, verifier).await?;
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
        st.refresh_token = Some(refresh_token);
        let lock = self
            .store
            .lock_refresh(&cfg.system_name, lock_wait(cfg))
            .await?;
        self.install(&mut st, cfg, grant.clone(), lock).await?;
        Ok(grant)
    }
}

/// How long a process waits for the refresh lock (and the longest its holder may keep it): a
/// token call with all its retries, and some slack.
fn lock_wait(cfg: &ClientConfig) -> Duration {
    cfg.request_timeout * cfg.retry.max_attempts.max(1)
        + cfg.retry.max_total_delay
        + Duration::from_secs(5)
}
