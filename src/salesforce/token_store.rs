//! Durable storage of the refresh token (table `salesforce_tokens`) and of the access token the
//! connector's processes share (`salesforce_sessions`), the refresh lock they take turns under,
//! and the choice between the stored refresh token and the configured one at start.
//!
//! The rule: a stored token is preferred while the configuration's refresh token is the one that
//! was configured when the row was written (its SHA-256 is kept in the row). When an operator
//! changes `refreshToken` in the configuration, the configured value wins again (the stored one
//! descends from an older authorization). A row written by the authorize flow records the
//! configured token's hash at that time, so it wins until the configuration changes.
//!
//! Tokens are stored sealed under the deployment's secrets key (see [`crate::secrets`]); the SQL
//! is in [`crate::repo::salesforce_tokens`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::config::Secret;
use super::errors::SalesforceError;
use crate::repo::salesforce_tokens::{self as repo, SealedColumn};
use crate::repo::{Pool, RepoError, Tx};
use crate::secrets::{Sealer, SecretsError};

/// The sealed columns, bound into their values.
const REFRESH_TOKEN: &str = "salesforce_tokens.refresh_token";
const ACCESS_TOKEN: &str = "salesforce_sessions.access_token";

fn sealed_as(column: SealedColumn) -> &'static str {
    match column {
        SealedColumn::RefreshToken => REFRESH_TOKEN,
        SealedColumn::AccessToken => ACCESS_TOKEN,
        SealedColumn::ClientSecret => super::config::CLIENT_SECRET,
    }
}

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

/// Where refresh tokens persist: Postgres in every role (secrets sealed under the
/// deployment's key), memory in unit tests and tools.
#[derive(Debug, Clone)]
pub enum TokenStore {
    Postgres(Pool, Sealer),
    /// Tokens, the credentials of [`super::credentials`] and the enabled overrides. No access
    /// token is shared: a memory store serves one process, which keeps its own.
    Memory(
        Arc<Mutex<HashMap<String, StoredToken>>>,
        Arc<Mutex<HashMap<String, super::config::Credentials>>>,
        Arc<Mutex<HashMap<String, bool>>>,
    ),
}

impl TokenStore {
    pub fn postgres(pool: Pool, sealer: Sealer) -> TokenStore {
        TokenStore::Postgres(pool, sealer)
    }

    /// `plain` as the column `what` stores it: sealed in Postgres, as it is in memory.
    pub fn seal(&self, what: &'static str, plain: &str) -> Result<String, SalesforceError> {
        match self {
            TokenStore::Postgres(_, sealer) => sealer.seal(what, plain).map_err(secrets_error),
            TokenStore::Memory(..) => Ok(plain.to_owned()),
        }
    }

    /// The secret in a stored value of the column `what`.
    pub fn open(&self, what: &'static str, stored: &str) -> Result<String, SalesforceError> {
        match self {
            TokenStore::Postgres(_, sealer) => sealer.open(what, stored).map_err(secrets_error),
            TokenStore::Memory(..) => Ok(stored.to_owned()),
        }
    }

    /// Run at start-up: checks that this role's key opens the stored secrets (tokens and saved
    /// credentials), so a role given another key refuses to start instead of failing every
    /// change, and seals those stored before sealing existed; returns how many it sealed.
    pub async fn prepare(&self) -> Result<u64, SalesforceError> {
        let TokenStore::Postgres(pool, sealer) = self else {
            return Ok(0);
        };
        let mut sealed = 0;
        for column in SealedColumn::ALL {
            let what = sealed_as(column);
            let stored = repo::stored_secrets(pool, column)
                .await
                .map_err(store_error)?;
            for (system, value) in stored {
                if Sealer::is_sealed(&value) {
                    sealer.open(what, &value).map_err(secrets_error)?;
                    continue;
                }
                let resealed = sealer.seal(what, &value).map_err(secrets_error)?;
                if repo::reseal(pool, column, &system, &value, &resealed)
                    .await
                    .map_err(store_error)?
                {
                    sealed += 1;
                }
            }
        }
        Ok(sealed)
    }

    pub fn in_memory() -> TokenStore {
        TokenStore::Memory(Arc::default(), Arc::default(), Arc::default())
    }

    pub async fn load(&self, system: &str) -> Result<Option<StoredToken>, SalesforceError> {
        match self {
            TokenStore::Postgres(pool, _) => {
                let row = repo::load_token(pool, system).await.map_err(store_error)?;
                row.map(|r| self.open_token(r)).transpose()
            }
            TokenStore::Memory(map, _, _) => Ok(lock(map).get(system).cloned()),
        }
    }

    /// Writes (or replaces) the system's refresh token; returns once it is durable.
    pub async fn save(
        &self,
        system: &str,
        refresh_token: &Secret,
        instance_url: Option<&str>,
        conf_refresh_token_sha256: Option<&str>,
    ) -> Result<(), SalesforceError> {
        match self {
            TokenStore::Postgres(pool, _) => {
                let sealed = self.seal(REFRESH_TOKEN, refresh_token.expose())?;
                repo::save_token(
                    pool,
                    system,
                    &sealed,
                    instance_url,
                    conf_refresh_token_sha256,
                )
                .await
                .map_err(store_error)?;
            }
            TokenStore::Memory(map, _, _) => {
                save_in_memory(
                    map,
                    system,
                    refresh_token,
                    instance_url,
                    conf_refresh_token_sha256,
                );
            }
        }
        Ok(())
    }

    /// Takes the system's refresh lock, which every process sharing the database takes before
    /// a token call, waiting at most `wait`. A memory store has nobody to share with: its lock
    /// is taken at once and holds nothing.
    pub async fn lock_refresh<'s>(
        &'s self,
        system: &'s str,
        wait: Duration,
    ) -> Result<RefreshLock<'s>, SalesforceError> {
        let tx = match self {
            TokenStore::Postgres(pool, _) => {
                let mut tx = crate::repo::begin(pool).await.map_err(store_error)?;
                repo::lock_refresh(&mut tx, system, wait)
                    .await
                    .map_err(store_error)?;
                Some(tx)
            }
            TokenStore::Memory(..) => None,
        };
        Ok(RefreshLock {
            store: self,
            system,
            tx,
        })
    }

    fn open_token(&self, r: repo::TokenRow) -> Result<StoredToken, SalesforceError> {
        Ok(StoredToken {
            refresh_token: Secret::new(self.open(REFRESH_TOKEN, &r.sealed_refresh_token)?),
            instance_url: r.instance_url,
            conf_refresh_token_sha256: r.conf_refresh_token_sha256,
            updated_at: r.updated_at,
        })
    }
}

/// The refresh lock of one system, held on a connection of its own (a transaction) until
/// [`RefreshLock::release`], which also makes what was saved under it durable; dropped
/// instead, it rolls back and frees the lock. Hold it across token calls only, never across
/// data calls.
pub struct RefreshLock<'s> {
    store: &'s TokenStore,
    system: &'s str,
    /// `None` for a memory store.
    tx: Option<Tx>,
}

impl std::fmt::Debug for RefreshLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshLock")
            .field("system", &self.system)
            .field("shared", &self.tx.is_some())
            .finish()
    }
}

impl RefreshLock<'_> {
    /// The stored refresh token, as of now (another process may have just rotated it).
    pub async fn token(&mut self) -> Result<Option<StoredToken>, SalesforceError> {
        match (&mut self.tx, self.store) {
            (Some(tx), store) => {
                let row = repo::load_token(&mut **tx, self.system)
                    .await
                    .map_err(store_error)?;
                row.map(|r| store.open_token(r)).transpose()
            }
            (None, store) => store.load(self.system).await,
        }
    }

    /// The shared access token, if one is stored (never for a memory store).
    pub async fn session(&mut self) -> Result<Option<StoredSession>, SalesforceError> {
        let Some(tx) = &mut self.tx else {
            return Ok(None);
        };
        let row = repo::load_session(&mut **tx, self.system)
            .await
            .map_err(store_error)?;
        row.map(|r| {
            Ok(StoredSession {
                access_token: Secret::new(self.store.open(ACCESS_TOKEN, &r.sealed_access_token)?),
                instance_url: r.instance_url,
                refresh_token_sha256: r.refresh_token_sha256,
                generation: r.generation,
                issued_at: r.issued_at,
            })
        })
        .transpose()
    }

    /// Saves a refresh token (durable once the lock is released).
    pub async fn save_token(
        &mut self,
        refresh_token: &Secret,
        instance_url: Option<&str>,
        conf_refresh_token_sha256: Option<&str>,
    ) -> Result<(), SalesforceError> {
        match (&mut self.tx, self.store) {
            (Some(tx), store) => {
                let sealed = store.seal(REFRESH_TOKEN, refresh_token.expose())?;
                repo::save_token(
                    &mut **tx,
                    self.system,
                    &sealed,
                    instance_url,
                    conf_refresh_token_sha256,
                )
                .await
                .map_err(store_error)
            }
            (None, store) => {
                store
                    .save(
                        self.system,
                        refresh_token,
                        instance_url,
                        conf_refresh_token_sha256,
                    )
                    .await
            }
        }
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
        let Some(tx) = &mut self.tx else {
            return Ok(None);
        };
        let sealed = self.store.seal(ACCESS_TOKEN, access_token.expose())?;
        let generation = repo::save_session(
            &mut **tx,
            self.system,
            &sealed,
            instance_url,
            refresh_token_sha256,
            issued_at,
        )
        .await
        .map_err(store_error)?;
        Ok(Some(generation))
    }

    /// Commits what was saved under the lock and frees it; returns once that is durable.
    pub async fn release(self) -> Result<(), SalesforceError> {
        match self.tx {
            Some(tx) => crate::repo::commit(tx).await.map_err(store_error),
            None => Ok(()),
        }
    }
}

fn save_in_memory(
    map: &Mutex<HashMap<String, StoredToken>>,
    system: &str,
    refresh_token: &Secret,
    instance_url: Option<&str>,
    conf_refresh_token_sha256: Option<&str>,
) {
    let mut map = lock(map);
    let previous_url = map.get(system).and_then(|t| t.instance_url.clone());
    map.insert(
        system.to_owned(),
        StoredToken {
            refresh_token: refresh_token.clone(),
            instance_url: instance_url.map(str::to_owned).or(previous_url),
            conf_refresh_token_sha256: conf_refresh_token_sha256.map(str::to_owned),
            updated_at: Utc::now(),
        },
    );
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

fn secrets_error(e: SecretsError) -> SalesforceError {
    match e {
        SecretsError::WrongKey { .. } | SecretsError::Damaged { .. } => {
            SalesforceError::SecretsKey(e.to_string())
        }
        other => SalesforceError::TokenStore(other.to_string()),
    }
}

pub(super) fn store_error(e: RepoError) -> SalesforceError {
    // Database errors never include bound parameters, so a token cannot leak through them.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    SalesforceError::TokenStore(message)
}

/// A poisoned lock still holds consistent maps (every write is one insert): use it.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
