//! The Salesforce client's observer, counting into [`Metrics`]: the client knows nothing of
//! idm-sync, idm-sync hands it this adapter.

use std::sync::Arc;

use super::Metrics;
use crate::salesforce::{ApiUsage, CallObserver, CallOutcome, Observer};

/// Counts the calls of the connector of `system`.
struct Counting {
    metrics: Metrics,
    system: String,
}

impl CallObserver for Counting {
    fn call(&self, operation: &'static str, outcome: CallOutcome) {
        self.metrics
            .salesforce_call(&self.system, operation, outcome.as_str());
    }

    fn api_usage(&self, usage: ApiUsage) {
        self.metrics.api_usage(&self.system, usage.used, usage.max);
    }
}

impl Metrics {
    /// An observer for [`crate::salesforce::SalesforceClient::observed`], labelling what the
    /// connector of `system` does.
    pub fn salesforce_observer(&self, system: &str) -> Observer {
        Observer::new(Arc::new(Counting {
            metrics: self.clone(),
            system: system.to_owned(),
        }))
    }
}
