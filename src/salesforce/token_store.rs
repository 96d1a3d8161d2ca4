//! Durable storage of the refresh token (table `salesforce_tokens`), and the choice between the
//! stored token and the configured one at start.
//!
//! The rule: a stored token is preferred while the configuration's refresh token is the one that
//! was configured when the row was written (its SHA-256 is kept in the row). When an operator
//! changes `refreshToken` in the configuration, the configured value wins again (the stored one
//! descends from an older authorization). A row written by the authorize flow records the
//! configured token's hash at that time, so it wins until the configuration changes.
//!
//! The token is stored sealed under the deployment's secrets key (see [`crate::secrets`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::config::Secret;
use super::errors::SalesforceError;
use crate::secrets::{Sealer, SecretsError};

/// The sealed column, bound into its values.
const REFRESH_TOKEN: &str = "salesforce_tokens.refresh_token";

/// `refresh_token, instance_url, conf_refresh_token_sha256, updated_at`.
type TokenRow = (String, Option<String>, Option<String>, DateTime<Utc>);

#[derive(Debug, Clone)]
pub struct StoredToken {
    pub refresh_token: Secret,
    pub instance_url: Option<String>,
    pub conf_refresh_token_sha256: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Where refresh tokens persist: Postgres in every role (secrets sealed under the
/// deployment's key), memory in unit tests and tools.
#[derive(Debug, Clone)]
pub enum TokenStore {
    Postgres(PgPool, Sealer),
    /// Tokens, the credentials of [`super::credentials`] and the enabled overrides.
    Memory(
        Arc<Mutex<HashMap<String, StoredToken>>>,
        Arc<Mutex<HashMap<String, super::credentials::Credentials>>>,
        Arc<Mutex<HashMap<String, bool>>>,
    ),
}

impl TokenStore {
    pub fn postgres(pool: PgPool, sealer: Sealer) -> TokenStore {
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
        for (table, column, what) in [
            ("salesforce_tokens", "refresh_token", REFRESH_TOKEN),
            (
                "salesforce_connector_settings",
                "client_secret",
                super::credentials::CLIENT_SECRET,
            ),
        ] {
            let stored: Vec<(String, String)> =
                sqlx::query_as(&format!("SELECT system_name, {column} FROM {table}"))
                    .fetch_all(pool)
                    .await
                    .map_err(store_error)?;
            for (system, value) in stored {
                if Sealer::is_sealed(&value) {
                    sealer.open(what, &value).map_err(secrets_error)?;
                    continue;
                }
                let done = sqlx::query(&format!(
                    "UPDATE {table} SET {column} = $1 WHERE system_name = $2 AND {column} = $3"
                ))
                .bind(sealer.seal(what, &value).map_err(secrets_error)?)
                .bind(&system)
                .bind(&value)
                .execute(pool)
                .await
                .map_err(store_error)?;
                sealed += done.rows_affected();
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
                let row: Option<TokenRow> = sqlx::query_as(
                    "SELECT refresh_token, instance_url, conf_refresh_token_sha256, updated_at \
                         FROM salesforce_tokens WHERE system_name = $1",
                )
                .bind(system)
                .fetch_optional(pool)
                .await
                .map_err(store_error)?;
                row.map(|(token, instance_url, conf, updated_at)| {
                    Ok(StoredToken {
                        refresh_token: Secret::new(self.open(REFRESH_TOKEN, &token)?),
                        instance_url,
                        conf_refresh_token_sha256: conf,
                        updated_at,
                    })
                })
                .transpose()
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
                sqlx::query(
                    "INSERT INTO salesforce_tokens \
                       (system_name, refresh_token, instance_url, conf_refresh_token_sha256, updated_at) \
                     VALUES ($1, $2, $3, $4, now()) \
                     ON CONFLICT (system_name) DO UPDATE SET \
                       refresh_token = EXCLUDED.refresh_token, \
                       instance_url = COALESCE(EXCLUDED.instance_url, salesforce_tokens.instance_url), \
                       conf_refresh_token_sha256 = EXCLUDED.conf_refresh_token_sha256, \
                       updated_at = now()",
                )
                .bind(system)
                .bind(self.seal(REFRESH_TOKEN, refresh_token.expose())?)
                .bind(instance_url)
                .bind(conf_refresh_token_sha256)
                .execute(pool)
                .await
                .map_err(store_error)?;
            }
            TokenStore::Memory(map, _, _) => {
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
        }
        Ok(())
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

fn secrets_error(e: SecretsError) -> SalesforceError {
    match e {
        SecretsError::WrongKey { .. } | SecretsError::Damaged { .. } => {
            SalesforceError::SecretsKey(e.to_string())
        }
        other => SalesforceError::TokenStore(other.to_string()),
    }
}

fn store_error(e: sqlx::Error) -> SalesforceError {
    // sqlx errors never include bound parameters, so the token cannot leak through them.
    SalesforceError::TokenStore(e.to_string())
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
