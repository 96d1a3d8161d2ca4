//! The grants an operator may pick for a managed user: the access catalog of the system the
//! user's grants are sent to (the first outbound mapping of `managed/user` that maps one),
//! read from Salesforce and kept a minute, so a page view rarely costs a query.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::AppState;
use crate::config::systems::Resource;
use crate::salesforce::SalesforceError;
use crate::salesforce::access::{AccessCatalog, is_access_attribute};

/// How long a catalog read is shown before it is read again.
const KEPT: Duration = Duration::from_secs(60);

/// A catalog and when it was read.
type Read = (Instant, Arc<AccessCatalog>);

/// Catalogs read, by system.
#[derive(Clone, Default)]
pub struct AccessCatalogs(Arc<Mutex<HashMap<String, Read>>>);

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no outbound mapping of managed users sends grants to a Salesforce system")]
    NoMapping,
    #[error("connector {0} is not configured or could not be set up")]
    NotAvailable(String),
    #[error("connector {0} is disabled")]
    Disabled(String),
    #[error("reading the catalog of {system}: {source}")]
    Salesforce {
        system: String,
        #[source]
        source: SalesforceError,
    },
}

impl AppState {
    /// The system managed users' grants go to, if a mapping sends any.
    pub fn grants_system(&self) -> Option<String> {
        let sync = self.recon.as_ref()?.sync_config();
        sync.mappings
            .iter()
            .filter(|m| m.source == "managed/user")
            .filter(|m| {
                m.properties.iter().any(|p| {
                    is_access_attribute(
                        p.target
                            .trim_start_matches('/')
                            .split('/')
                            .next()
                            .unwrap_or(""),
                    )
                })
            })
            .find_map(|m| match Resource::parse(&m.target) {
                Some(Resource::System { name, .. }) => Some(name.to_owned()),
                _ => None,
            })
    }

    /// The catalog of [`AppState::grants_system`], read at most once a minute.
    pub async fn access_catalog(&self) -> Result<(String, Arc<AccessCatalog>), CatalogError> {
        let system = self.grants_system().ok_or(CatalogError::NoMapping)?;
        let mut kept = self.access_catalogs.0.lock().await;
        if let Some((at, catalog)) = kept.get(&system)
            && at.elapsed() < KEPT
        {
            return Ok((system, catalog.clone()));
        }
        let client = self
            .connectors
            .get(&system)
            .ok_or_else(|| CatalogError::NotAvailable(system.clone()))?;
        if !client.enabled().await {
            return Err(CatalogError::Disabled(system));
        }
        let catalog =
            Arc::new(
                client
                    .access_catalog()
                    .await
                    .map_err(|source| CatalogError::Salesforce {
                        system: system.clone(),
                        source,
                    })?,
            );
        kept.insert(system.clone(), (Instant::now(), catalog.clone()));
        Ok((system, catalog))
    }
}
