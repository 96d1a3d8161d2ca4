//! The Salesforce connectors of `conf/`: one client per `provisioner.openicf-<name>.json`, by
//! system name. Each has its own credentials and sealed tokens (stored under its name), its
//! own session, rate-limit pause and enabled state, and labels its metrics with its name.
//! Every role holds this one set, so nothing picks "the" connector by a constant.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Conf;
use crate::metrics::Metrics;
use crate::salesforce::{SalesforceClient, SalesforceError, TokenStore};

/// The connectors by system name; cheap to clone.
#[derive(Clone, Default)]
pub struct Connectors(Arc<BTreeMap<String, SalesforceClient>>);

impl Connectors {
    /// A client for every system of `conf`, keeping tokens in `store`, counted in `metrics`.
    pub fn build(
        conf: &Conf,
        store: &TokenStore,
        metrics: &Metrics,
    ) -> Result<Connectors, SalesforceError> {
        let mut clients = Vec::with_capacity(conf.systems.len());
        for system in &conf.systems {
            clients.push(SalesforceClient::observed(
                system.client.clone(),
                store.clone(),
                metrics.salesforce_observer(&system.name),
            )?);
        }
        Ok(Connectors::from_clients(clients))
    }

    /// These clients, by their system names.
    pub fn from_clients(clients: impl IntoIterator<Item = SalesforceClient>) -> Connectors {
        Connectors(Arc::new(
            clients
                .into_iter()
                .map(|c| (c.system_name().to_owned(), c))
                .collect(),
        ))
    }

    /// The connector of system `name`.
    pub fn get(&self, name: &str) -> Option<&SalesforceClient> {
        self.0.get(name)
    }

    /// Every connector, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &SalesforceClient> {
        self.0.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The connector when there is exactly one (a command's default when none is named).
    pub fn only(&self) -> Option<&SalesforceClient> {
        match self.0.len() {
            1 => self.0.values().next(),
            _ => None,
        }
    }
}
