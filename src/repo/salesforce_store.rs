//! The Salesforce client's token store over Postgres, every secret sealed under the
//! deployment's key: the refresh token (`salesforce_tokens`), the access token the connector's
//! processes share (`salesforce_sessions`), the refresh lock (an advisory lock held in a
//! transaction of its own), and what an operator saved at run time (`salesforce_connector`).
//! The SQL is in [`super::salesforce_tokens`] and [`super::salesforce_connector`].

use std::time::Duration;

use reqwest::Url;

use super::salesforce_tokens::{self as tokens, SealedColumn, TokenRow};
use super::{Pool, RepoError, Tx, salesforce_connector as saved};
use crate::salesforce::token_store::{
    NewSession, NewToken, RefreshGuard, StoreFuture, StoredSession, StoredToken, TokenBackend,
};
use crate::salesforce::{Credentials, SalesforceError, Secret, TokenStore};
use crate::secrets::{Sealer, SecretsError};

/// The sealed columns, bound into their values.
const REFRESH_TOKEN: &str = "salesforce_tokens.refresh_token";
const ACCESS_TOKEN: &str = "salesforce_sessions.access_token";
const CLIENT_SECRET: &str = "salesforce_connector_settings.client_secret";

fn sealed_as(column: SealedColumn) -> &'static str {
    match column {
        SealedColumn::RefreshToken => REFRESH_TOKEN,
        SealedColumn::AccessToken => ACCESS_TOKEN,
        SealedColumn::ClientSecret => CLIENT_SECRET,
    }
}

/// The client's handle on a Postgres store (for callers that need not [`PgTokenStore::prepare`]).
pub fn postgres(pool: Pool, sealer: Sealer) -> TokenStore {
    PgTokenStore::new(pool, sealer).handle()
}

/// The store every role uses: one pool, one sealer.
#[derive(Debug, Clone)]
pub struct PgTokenStore {
    pool: Pool,
    sealer: Sealer,
}

impl PgTokenStore {
    pub fn new(pool: Pool, sealer: Sealer) -> PgTokenStore {
        PgTokenStore { pool, sealer }
    }

    /// The client's handle on this store.
    pub fn handle(&self) -> TokenStore {
        TokenStore::new(self.clone())
    }

    /// Run at start-up: checks that this role's key opens the stored secrets (tokens and saved
    /// credentials), so a role given another key refuses to start instead of failing every
    /// change, and seals those stored before sealing existed; returns how many it sealed.
    pub async fn prepare(&self) -> Result<u64, SalesforceError> {
        let mut sealed = 0;
        for column in SealedColumn::ALL {
            let what = sealed_as(column);
            let stored = tokens::stored_secrets(&self.pool, column)
                .await
                .map_err(store_error)?;
            for (system, value) in stored {
                if Sealer::is_sealed(&value) {
                    self.sealer.open(what, &value).map_err(secrets_error)?;
                    continue;
                }
                let resealed = self.sealer.seal(what, &value).map_err(secrets_error)?;
                if tokens::reseal(&self.pool, column, &system, &value, &resealed)
                    .await
                    .map_err(store_error)?
                {
                    sealed += 1;
                }
            }
        }
        Ok(sealed)
    }

    fn seal(&self, what: &'static str, plain: &str) -> Result<String, SalesforceError> {
        self.sealer.seal(what, plain).map_err(secrets_error)
    }

    fn open(&self, what: &'static str, stored: &str) -> Result<String, SalesforceError> {
        self.sealer.open(what, stored).map_err(secrets_error)
    }

    fn open_token(&self, r: TokenRow) -> Result<StoredToken, SalesforceError> {
        Ok(StoredToken {
            refresh_token: Secret::new(self.open(REFRESH_TOKEN, &r.sealed_refresh_token)?),
            instance_url: r.instance_url,
            conf_refresh_token_sha256: r.conf_refresh_token_sha256,
            updated_at: r.updated_at,
        })
    }
}

impl TokenBackend for PgTokenStore {
    fn load<'a>(&'a self, system: &'a str) -> StoreFuture<'a, Option<StoredToken>> {
        Box::pin(async move {
            let row = tokens::load_token(&self.pool, system)
                .await
                .map_err(store_error)?;
            row.map(|r| self.open_token(r)).transpose()
        })
    }

    fn save<'a>(&'a self, system: &'a str, token: NewToken<'a>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let sealed = self.seal(REFRESH_TOKEN, token.refresh_token.expose())?;
            tokens::save_token(
                &self.pool,
                system,
                &sealed,
                token.instance_url,
                token.conf_refresh_token_sha256,
            )
            .await
            .map_err(store_error)
        })
    }

    fn lock_refresh<'a>(
        &'a self,
        system: &'a str,
        wait: Duration,
    ) -> StoreFuture<'a, Box<dyn RefreshGuard + 'a>> {
        Box::pin(async move {
            let mut tx = super::begin(&self.pool).await.map_err(store_error)?;
            tokens::lock_refresh(&mut tx, system, wait)
                .await
                .map_err(store_error)?;
            let guard: Box<dyn RefreshGuard + 'a> = Box::new(PgRefreshGuard {
                store: self,
                system,
                tx,
            });
            Ok(guard)
        })
    }

    fn load_credentials<'a>(&'a self, system: &'a str) -> StoreFuture<'a, Option<Credentials>> {
        Box::pin(async move {
            let row = saved::load_credentials(&self.pool, system)
                .await
                .map_err(store_error)?;
            row.map(|row| {
                let login_url = Url::parse(&row.login_url)
                    .map_err(|e| SalesforceError::TokenStore(format!("stored login URL: {e}")))?;
                Ok(Credentials {
                    login_url,
                    client_id: row.client_id,
                    client_secret: Secret::new(
                        self.open(CLIENT_SECRET, &row.sealed_client_secret)?,
                    ),
                })
            })
            .transpose()
        })
    }

    fn save_credentials<'a>(
        &'a self,
        system: &'a str,
        credentials: &'a Credentials,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let sealed = self.seal(CLIENT_SECRET, credentials.client_secret.expose())?;
            saved::save_credentials(
                &self.pool,
                system,
                credentials.login_url.as_str(),
                &credentials.client_id,
                &sealed,
            )
            .await
            .map_err(store_error)
        })
    }

    fn load_enabled<'a>(&'a self, system: &'a str) -> StoreFuture<'a, Option<bool>> {
        Box::pin(async move {
            saved::load_enabled(&self.pool, system)
                .await
                .map_err(store_error)
        })
    }

    fn save_enabled<'a>(&'a self, system: &'a str, on: bool) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            saved::save_enabled(&self.pool, system, on)
                .await
                .map_err(store_error)
        })
    }
}

/// The refresh lock: an advisory lock in a transaction of its own, in which the tokens are
/// re-read and saved, so what is saved under it is durable exactly when the lock is freed.
struct PgRefreshGuard<'s> {
    store: &'s PgTokenStore,
    system: &'s str,
    tx: Tx,
}

impl RefreshGuard for PgRefreshGuard<'_> {
    fn token(&mut self) -> StoreFuture<'_, Option<StoredToken>> {
        Box::pin(async move {
            let row = tokens::load_token(&mut *self.tx, self.system)
                .await
                .map_err(store_error)?;
            row.map(|r| self.store.open_token(r)).transpose()
        })
    }

    fn session(&mut self) -> StoreFuture<'_, Option<StoredSession>> {
        Box::pin(async move {
            let row = tokens::load_session(&mut *self.tx, self.system)
                .await
                .map_err(store_error)?;
            row.map(|r| {
                Ok(StoredSession {
                    access_token: Secret::new(
                        self.store.open(ACCESS_TOKEN, &r.sealed_access_token)?,
                    ),
                    instance_url: r.instance_url,
                    refresh_token_sha256: r.refresh_token_sha256,
                    generation: r.generation,
                    issued_at: r.issued_at,
                })
            })
            .transpose()
        })
    }

    fn save_token<'a>(&'a mut self, token: NewToken<'a>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let sealed = self
                .store
                .seal(REFRESH_TOKEN, token.refresh_token.expose())?;
            tokens::save_token(
                &mut *self.tx,
                self.system,
                &sealed,
                token.instance_url,
                token.conf_refresh_token_sha256,
            )
            .await
            .map_err(store_error)
        })
    }

    fn save_session<'a>(&'a mut self, session: NewSession<'a>) -> StoreFuture<'a, Option<i64>> {
        Box::pin(async move {
            let sealed = self
                .store
                .seal(ACCESS_TOKEN, session.access_token.expose())?;
            let generation = tokens::save_session(
                &mut *self.tx,
                self.system,
                &sealed,
                session.instance_url,
                session.refresh_token_sha256,
                session.issued_at,
            )
            .await
            .map_err(store_error)?;
            Ok(Some(generation))
        })
    }

    fn release(self: Box<Self>) -> StoreFuture<'static, ()> {
        let tx = self.tx;
        Box::pin(async move { super::commit(tx).await.map_err(store_error) })
    }
}

fn secrets_error(e: SecretsError) -> SalesforceError {
    match e {
        SecretsError::WrongKey { .. } | SecretsError::Damaged { .. } => {
            SalesforceError::SecretsKey(e.to_string())
        }
        other => SalesforceError::TokenStore(other.to_string()),
    }
}

fn store_error(e: RepoError) -> SalesforceError {
    // Database errors never include bound parameters, so a token cannot leak through them.
    SalesforceError::TokenStore(crate::telemetry::error_chain(&e))
}
