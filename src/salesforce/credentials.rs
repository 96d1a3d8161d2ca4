//! Connector credentials saved at run time (the Admin UI's Connectors page): the token endpoint
//! (`loginUrl`), consumer key and consumer secret, in table `salesforce_connector_settings`.
//!
//! They override the provisioner file's three values in every role: the session manager reads
//! the row at each token call (first use, after a 401, after a failure), so a process picks up
//! settings saved by another one at its next token call, without a restart. The row is written
//! only after a successful code exchange with those very credentials, so a typo in the UI never
//! breaks a working connector.

use reqwest::Url;

use super::config::{CLIENT_SECRET, Credentials, Secret};
use super::errors::SalesforceError;
use super::token_store::{TokenStore, lock, store_error};
use crate::repo::salesforce_connector as saved;

impl TokenStore {
    /// The saved credentials of `system`, if any were saved.
    pub async fn load_credentials(
        &self,
        system: &str,
    ) -> Result<Option<Credentials>, SalesforceError> {
        match self {
            TokenStore::Postgres(pool, _) => {
                let row = saved::load_credentials(pool, system)
                    .await
                    .map_err(store_error)?;
                row.map(|row| {
                    let login_url = Url::parse(&row.login_url).map_err(|e| {
                        SalesforceError::TokenStore(format!("stored login URL: {e}"))
                    })?;
                    Ok(Credentials {
                        login_url,
                        client_id: row.client_id,
                        client_secret: Secret::new(
                            self.open(CLIENT_SECRET, &row.sealed_client_secret)?,
                        ),
                    })
                })
                .transpose()
            }
            TokenStore::Memory(_, creds, _) => Ok(lock(creds).get(system).cloned()),
        }
    }

    /// Saves (or replaces) the credentials of `system`; returns once durable.
    pub async fn save_credentials(
        &self,
        system: &str,
        credentials: &Credentials,
    ) -> Result<(), SalesforceError> {
        match self {
            TokenStore::Postgres(pool, _) => {
                let sealed = self.seal(CLIENT_SECRET, credentials.client_secret.expose())?;
                saved::save_credentials(
                    pool,
                    system,
                    credentials.login_url.as_str(),
                    &credentials.client_id,
                    &sealed,
                )
                .await
                .map_err(store_error)?;
            }
            TokenStore::Memory(_, creds, _) => {
                lock(creds).insert(system.to_owned(), credentials.clone());
            }
        }
        Ok(())
    }

    /// The enabled state saved for `system` (Admin UI), if any: it overrides the file's.
    pub async fn load_enabled(&self, system: &str) -> Result<Option<bool>, SalesforceError> {
        match self {
            TokenStore::Postgres(pool, _) => {
                saved::load_enabled(pool, system).await.map_err(store_error)
            }
            TokenStore::Memory(_, _, enabled) => Ok(lock(enabled).get(system).copied()),
        }
    }

    /// Saves the enabled state of `system`; returns once durable.
    pub async fn save_enabled(&self, system: &str, on: bool) -> Result<(), SalesforceError> {
        match self {
            TokenStore::Postgres(pool, _) => {
                saved::save_enabled(pool, system, on)
                    .await
                    .map_err(store_error)?;
            }
            TokenStore::Memory(_, _, enabled) => {
                lock(enabled).insert(system.to_owned(), on);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::ClientConfig;

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
    async fn memory_round_trip_and_apply() {
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
