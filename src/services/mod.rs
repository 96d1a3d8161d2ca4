//! The application layer: what the transports (REST under `api`, the Admin UI under `admin`)
//! ask of the service, over `repo` and the Salesforce client. A handler parses, calls one of
//! these and renders; it opens no transaction. [`AppState`] lives here, not with a transport,
//! so `api` and `admin` both depend on it and not on each other's state.

pub mod access_catalog;
pub mod change_events;
pub mod connectors;
pub mod paging_cookie;
pub mod relations;
pub mod resync;
pub mod sync_failures;
pub mod sync_status;

use std::sync::Arc;

use self::paging_cookie::PagingCookies;
use crate::config::Conf;
use crate::connectors::Connectors;
use crate::credentials::Authenticator;
use crate::managed::ManagedObjects;
use crate::outbound::broker::BrokerStatus;
use crate::recon::ReconEngine;
use crate::scheduler::Schedule;
use crate::secrets::Sealer;

/// The services and configuration every request handler sees.
#[derive(Clone)]
pub struct AppState {
    pub managed: ManagedObjects,
    pub auth: Arc<Authenticator>,
    /// The broker connection of this process's relay, when it runs one.
    pub broker: Option<BrokerStatus>,
    /// The whole configuration, as loaded at start-up.
    pub conf: Arc<Conf>,
    /// The Salesforce connectors, one per provisioner file of `conf/`.
    pub connectors: Connectors,
    /// `conf/schedule-*.json`.
    pub schedules: Arc<Vec<Schedule>>,
    /// The reconciliation engine, when `conf/` has `sync.json` and the Salesforce connector.
    pub recon: Option<ReconEngine>,
    /// Signs and checks paged-results cookies (a key derived from the secrets key).
    pub cookies: PagingCookies,
    /// Seals what the service stores itself (the Admin UI's pending authorizations).
    pub sealer: Sealer,
    /// The access catalogs the operator pages pick grants from.
    pub access_catalogs: access_catalog::AccessCatalogs,
}

impl AppState {
    /// The relation object sets REST pages through (links, audit, sync failures).
    pub fn relations(&self) -> relations::Relations {
        relations::Relations::new(self.managed.pool().clone())
    }

    /// Sync failures: retry one, retry all.
    pub fn sync_failures(&self) -> sync_failures::SyncFailures<'_> {
        sync_failures::SyncFailures::new(self.managed.pool())
    }
}
