//! Where the connector's state persists: the refresh token, the access token its processes
//! share, the refresh lock they take turns under, the credentials and enabled state saved at
//! run time; and the choice between the stored refresh token and the configured one at start.
//!
//! The client defines the store as a trait ([`TokenBackend`]) and holds it behind a cloneable
//! handle ([`TokenStore`]). The service implements it over Postgres with the secrets sealed
//! (`idm_sync::repo::salesforce_store`); [`TokenStore::in_memory`] serves one process (tests,
//! tools), shares nothing and locks nothing.
//!
//! The rule: a stored token is preferred while the configuration's refresh token is the one that
//! was configured when the row was written (its SHA-256 is kept in the row). When an operator
//! changes `refreshToken` in the configuration, the configured value wins again (the stored one
//! descends from an older authorization). A row written by the authorize flow records the
//! configured token's hash at that time, so it wins until the configuration changes.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Credentials, Secret};
use crate::errors::SalesforceError;

#[derive(Debug, Clone)]
pub struct StoredToken {
    pub refresh_token: Secret,
    pub instance_url: Option<String>,
    pub conf_refresh_token_sha256: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The access token the connector's processes share, as the latest refresh stored it.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub access_token: Secret,
    pub instance_url: String,
    /// SHA-256 of the refresh token current when it was stored.
    pub refresh_token_sha256: String,
    /// 1 for the first session stored, +1 at each refresh.
    pub generation: i64,
    pub issued_at: DateTime<Utc>,
}

/// What a store's operations return: boxed, so the client can hold any store as a trait object.
/// Failures are [`SalesforceError::TokenStore`] (storage) or [`SalesforceError::SecretsKey`]
/// (a stored secret this process's key cannot open).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SalesforceError>> + Send + 'a>>;

/// A store of the connector's state. Every write returns once it is durable.
pub trait TokenBackend: Send + Sync + fmt::Debug {
    fn load<'a>(&'a self, system: &'a str) -> StoreFuture<'a, Option<StoredToken>>;

    /// Writes (or replaces) the system's refresh token; an absent instance URL keeps the
    /// stored one.
    fn save<'a>(&'a self, system: &'a str, token: NewToken<'a>) -> StoreFuture<'a, ()>;

    /// Takes the system's refresh lock, which every process sharing the store takes before a
    /// token call, waiting at most `wait`.
    fn lock_refresh<'a>(
        &'a self,
        system: &'a str,
        wait: Duration,
    ) -> StoreFuture<'a, Box<dyn RefreshGuard + 'a>>;

    fn load_credentials<'a>(&'a self, system: &'a str) -> StoreFuture<'a, Option<Credentials>>;

    fn save_credentials<'a>(
        &'a self,
        system: &'a str,
        credentials: &'a Credentials,
    ) -> StoreFuture<'a, ()>;

    /// The enabled state saved for `system`, if any: it overrides the file's.
    fn load_enabled<'a>(&'a self, system: &'a str) -> StoreFuture<'a, Option<bool>>;

    fn save_enabled<'a>(&'a self, system: &'a str, on: bool) -> StoreFuture<'a, ()>;
}

/// A refresh token to save.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    pub refresh_token: &'a Secret,
    pub instance_url: Option<&'a str>,
    /// SHA-256 of the configured refresh token when this one was obtained.
    pub conf_refresh_token_sha256: Option<&'a str>,
}

impl<'a> NewToken<'a> {
    pub fn new(
        refresh_token: &'a Secret,
        instance_url: Option<&'a str>,
        conf_refresh_token_sha256: Option<&'a str>,
    ) -> NewToken<'a> {
        NewToken {
            refresh_token,
            instance_url,
            conf_refresh_token_sha256,
        }
    }
}

/// A held refresh lock. What is saved under it becomes durable at [`RefreshGuard::release`];
/// dropped instead, it is undone and the lock freed.
pub trait RefreshGuard: Send {
    /// The stored refresh token, as of now (another process may have just rotated it).
    fn token(&mut self) -> StoreFuture<'_, Option<StoredToken>>;

    /// The shared access token, if one is stored.
    fn session(&mut self) -> StoreFuture<'_, Option<StoredSession>>;

    fn save_token<'a>(&'a mut self, token: NewToken<'a>) -> StoreFuture<'a, ()>;

    /// Shares an access token with the other processes; its stored generation, `None` for a
    /// store that shares nothing.
    fn save_session<'a>(&'a mut self, session: NewSession<'a>) -> StoreFuture<'a, Option<i64>>;

    fn release(self: Box<Self>) -> StoreFuture<'static, ()>;
}

/// An access token to share.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    pub access_token: &'a Secret,
    pub instance_url: &'a str,
    pub refresh_token_sha256: &'a str,
    pub issued_at: DateTime<Utc>,
}

/// The client's handle on its store: cheap to clone, shared by every clone of the client.
#[derive(Debug, Clone)]
pub struct TokenStore(Arc<dyn TokenBackend>);

impl TokenStore {
    pub fn new(backend: impl TokenBackend + 'static) -> TokenStore {
        TokenStore(Arc::new(backend))
    }

    /// A store for one process: nothing shared, nothing sealed, gone at exit.
    pub fn in_memory() -> TokenStore {
        TokenStore::new(MemoryStore::default())
    }

    pub async fn load(&self, system: &str) -> Result<Option<StoredToken>, SalesforceError> {
        self.0.load(system).await
    }

    /// Writes (or replaces) the system's refresh token; returns once it is durable.
    pub async fn save(
        &self,
        system: &str,
        refresh_token: &Secret,
        instance_url: Option<&str>,
        conf_refresh_token_sha256: Option<&str>,
    ) -> Result<(), SalesforceError> {
        let token = NewToken::new(refresh_token, instance_url, conf_refresh_token_sha256);
        self.0.save(system, token).await
    }

    /// Takes the system's refresh lock (see [`TokenBackend::lock_refresh`]). Hold it across
    /// token calls only, never across data calls.
    pub async fn lock_refresh<'s>(
        &'s self,
        system: &'s str,
        wait: Duration,
    ) -> Result<RefreshLock<'s>, SalesforceError> {
        let guard = self.0.lock_refresh(system, wait).await?;
        Ok(RefreshLock { system, guard })
    }

    /// The saved credentials of `system`, if any were saved.
    pub async fn load_credentials(
        &self,
        system: &str,
    ) -> Result<Option<Credentials>, SalesforceError> {
        self.0.load_credentials(system).await
    }

    /// Saves (or replaces) the credentials of `system`; returns once durable.
    pub async fn save_credentials(
        &self,
        system: &str,
        credentials: &Credentials,
    ) -> Result<(), SalesforceError> {
        self.0.save_credentials(system, credentials).await
    }

    /// The enabled state saved for `system` (Admin UI), if any: it overrides the file's.
    pub async fn load_enabled(&self, system: &str) -> Result<Option<bool>, SalesforceError> {
        self.0.load_enabled(system).await
    }

    /// Saves the enabled state of `system`; returns once durable.
    pub async fn save_enabled(&self, system: &str, on: bool) -> Result<(), SalesforceError> {
        self.0.save_enabled(system, on).await
    }
}

/// The refresh lock of one system, held until [`RefreshLock::release`], which also makes what
/// was saved under it durable; dropped instead, it is undone and the lock freed.
pub struct RefreshLock<'s> {
    system: &'s str,
    guard: Box<dyn RefreshGuard + 's>,
}

impl fmt::Debug for RefreshLock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshLock")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

impl RefreshLock<'_> {
    /// The stored refresh token, as of now (another process may have just rotated it).
    pub async fn token(&mut self) -> Result<Option<StoredToken>, SalesforceError> {
        self.guard.token().await
    }

    /// The shared access token, if one is stored (never for a memory store).
    pub async fn session(&mut self) -> Result<Option<StoredSession>, SalesforceError> {
        self.guard.session().await
    }

    /// Saves a refresh token (durable once the lock is released).
    pub async fn save_token(
        &mut self,
        refresh_token: &Secret,
        instance_url: Option<&str>,
        conf_refresh_token_sha256: Option<&str>,
    ) -> Result<(), SalesforceError> {
        let token = NewToken::new(refresh_token, instance_url, conf_refresh_token_sha256);
        self.guard.save_token(token).await
    }

    /// Shares an access token with the other processes (durable once the lock is released);
    /// its stored generation, `None` for a memory store, which shares nothing.
    pub async fn save_session(
        &mut self,
        access_token: &Secret,
        instance_url: &str,
        refresh_token_sha256: &str,
        issued_at: DateTime<Utc>,
    ) -> Result<Option<i64>, SalesforceError> {
        let session = NewSession {
            access_token,
            instance_url,
            refresh_token_sha256,
            issued_at,
        };
        self.guard.save_session(session).await
    }

    /// Makes what was saved under the lock durable and frees it.
    pub async fn release(self) -> Result<(), SalesforceError> {
        self.guard.release().await
    }
}

/// One process's store: tokens, credentials and enabled overrides in maps. No access token is
/// shared and the lock holds nothing: there is nobody to share with.
#[derive(Debug, Default)]
struct MemoryStore {
    tokens: Mutex<HashMap<String, StoredToken>>,
    credentials: Mutex<HashMap<String, Credentials>>,
    enabled: Mutex<HashMap<String, bool>>,
}

impl MemoryStore {
    fn save_now(&self, system: &str, token: NewToken<'_>) {
        let mut map = lock(&self.tokens);
        let previous_url = map.get(system).and_then(|t| t.instance_url.clone());
        map.insert(
            system.to_owned(),
            StoredToken {
                refresh_token: token.refresh_token.clone(),
                instance_url: token.instance_url.map(str::to_owned).or(previous_url),
                conf_refresh_token_sha256: token.conf_refresh_token_sha256.map(str::to_owned),
                updated_at: Utc::now(),
            },
        );
    }
}

impl TokenBackend for MemoryStore {
    fn load<'a>(&'a self, system: &'a str) -> StoreFuture<'a, Option<StoredToken>> {
        let found = lock(&self.tokens).get(system).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(&'a self, system: &'a str, token: NewToken<'a>) -> StoreFuture<'a, ()> {
        self.save_now(system, token);
        Box::pin(async { Ok(()) })
    }

    fn lock_refresh<'a>(
        &'a self,
        system: &'a str,
        _wait: Duration,
    ) -> StoreFuture<'a, Box<dyn RefreshGuard + 'a>> {
        let guard: Box<dyn RefreshGuard + 'a> = Box::new(MemoryGuard {
            store: self,
            system,
        });
        Box::pin(async move { Ok(guard) })
    }

    fn load_credentials<'a>(&'a self, system: &'a str) -> StoreFuture<'a, Option<Credentials>> {
        let found = lock(&self.credentials).get(system).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn save_credentials<'a>(
        &'a self,
        system: &'a str,
        credentials: &'a Credentials,
    ) -> StoreFuture<'a, ()> {
        lock(&self.credentials).insert(system.to_owned(), credentials.clone());
        Box::pin(async { Ok(()) })
    }

    fn load_enabled<'a>(&'a self, system: &'a str) -> StoreFuture<'a, Option<bool>> {
        let found = lock(&self.enabled).get(system).copied();
        Box::pin(async move { Ok(found) })
    }

    fn save_enabled<'a>(&'a self, system: &'a str, on: bool) -> StoreFuture<'a, ()> {
        lock(&self.enabled).insert(system.to_owned(), on);
        Box::pin(async { Ok(()) })
    }
}

/// The memory store's lock: saves go straight to the maps; no session is shared.
struct MemoryGuard<'s> {
    store: &'s MemoryStore,
    system: &'s str,
}

impl RefreshGuard for MemoryGuard<'_> {
    fn token(&mut self) -> StoreFuture<'_, Option<StoredToken>> {
        self.store.load(self.system)
    }

    fn session(&mut self) -> StoreFuture<'_, Option<StoredSession>> {
        Box::pin(async { Ok(None) })
    }

    fn save_token<'a>(&'a mut self, token: NewToken<'a>) -> StoreFuture<'a, ()> {
        self.store.save_now(self.system, token);
        Box::pin(async { Ok(()) })
    }

    fn save_session<'a>(&'a mut self, _session: NewSession<'a>) -> StoreFuture<'a, Option<i64>> {
        Box::pin(async { Ok(None) })
    }

    fn release(self: Box<Self>) -> StoreFuture<'static, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// Which refresh token to start with, and where it came from (for the log).
pub fn choose_refresh_token(
    configured: Option<&Secret>,
    stored: Option<StoredToken>,
) -> Option<(Secret, TokenSource)> {
    match (configured, stored) {
        (None, Some(s)) => Some((s.refresh_token, TokenSource::Store)),
        (Some(c), Some(s))
            if s.conf_refresh_token_sha256.as_deref() == Some(c.sha256_hex().as_str()) =>
        {
            Some((s.refresh_token, TokenSource::Store))
        }
        (Some(c), _) => Some((c.clone(), TokenSource::Configuration)),
        (None, None) => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Configuration,
    Store,
}

/// A poisoned lock still holds consistent maps (every write is one insert): use it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use reqwest::Url;

    fn stored(token: &str, conf: Option<&str>) -> StoredToken {
        StoredToken {
            refresh_token: Secret::new(token),
            instance_url: None,
            conf_refresh_token_sha256: conf.map(|c| Secret::new(c).sha256_hex()),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn stored_token_wins_while_the_configuration_is_unchanged() {
        let conf = Secret::new("conf-1");
        let (t, src) =
            choose_refresh_token(Some(&conf), Some(stored("rotated", Some("conf-1")))).unwrap();
        assert_eq!((t.expose(), src), ("rotated", TokenSource::Store));
    }

    #[test]
    fn a_changed_configuration_wins_over_the_store() {
        let conf = Secret::new("pasted-new");
        let (t, src) =
            choose_refresh_token(Some(&conf), Some(stored("rotated", Some("conf-1")))).unwrap();
        assert_eq!(
            (t.expose(), src),
            ("pasted-new", TokenSource::Configuration)
        );
    }

    #[test]
    fn either_alone_is_used_and_none_means_unauthorized() {
        let (t, _) = choose_refresh_token(None, Some(stored("s", None))).unwrap();
        assert_eq!(t.expose(), "s");
        let conf = Secret::new("c");
        let (t, src) = choose_refresh_token(Some(&conf), None).unwrap();
        assert_eq!((t.expose(), src), ("c", TokenSource::Configuration));
        assert!(choose_refresh_token(None, None).is_none());
    }

    #[tokio::test]
    async fn memory_store_round_trips_and_keeps_the_instance_url() {
        let store = TokenStore::in_memory();
        store
            .save("salesforce", &Secret::new("a"), Some("https://x"), None)
            .await
            .unwrap();
        store
            .save("salesforce", &Secret::new("b"), None, Some("h"))
            .await
            .unwrap();
        let t = store.load("salesforce").await.unwrap().unwrap();
        assert_eq!(t.refresh_token.expose(), "b");
        assert_eq!(t.instance_url.as_deref(), Some("https://x"));
        assert!(store.load("other").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn memory_lock_saves_at_once_and_shares_no_session() {
        let store = TokenStore::in_memory();
        let mut lock = store
            .lock_refresh("salesforce", Duration::from_secs(1))
            .await
            .unwrap();
        lock.save_token(&Secret::new("r"), Some("https://x"), None)
            .await
            .unwrap();
        let generation = lock
            .save_session(&Secret::new("a"), "https://x", "h", Utc::now())
            .await
            .unwrap();
        assert_eq!(generation, None);
        assert!(lock.session().await.unwrap().is_none());
        assert_eq!(
            lock.token().await.unwrap().unwrap().refresh_token.expose(),
            "r"
        );
        lock.release().await.unwrap();
    }

    #[tokio::test]
    async fn enabled_override_round_trip() {
        let store = TokenStore::in_memory();
        assert_eq!(store.load_enabled("salesforce").await.unwrap(), None);
        store.save_enabled("salesforce", false).await.unwrap();
        assert_eq!(store.load_enabled("salesforce").await.unwrap(), Some(false));
        store.save_enabled("salesforce", true).await.unwrap();
        assert_eq!(store.load_enabled("salesforce").await.unwrap(), Some(true));
        assert_eq!(store.load_enabled("other").await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_credentials_round_trip_and_apply() {
        let store = TokenStore::in_memory();
        assert!(
            store
                .load_credentials("salesforce")
                .await
                .unwrap()
                .is_none()
        );
        let c = Credentials {
            login_url: Url::parse("https://test.salesforce.com/services/oauth2/token").unwrap(),
            client_id: "k".into(),
            client_secret: Secret::new("s"),
        };
        store.save_credentials("salesforce", &c).await.unwrap();
        assert_eq!(
            store.load_credentials("salesforce").await.unwrap(),
            Some(c.clone())
        );
        let base = ClientConfig::new(
            Url::parse("https://login.salesforce.com/services/oauth2/token").unwrap(),
            "old",
            Secret::new("old"),
            None,
        );
        let applied = c.apply(&base);
        assert_eq!(applied.client_id, "k");
        assert_eq!(applied.login_url.host_str(), Some("test.salesforce.com"));
    }
}
