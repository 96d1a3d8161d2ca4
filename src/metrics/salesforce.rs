//! The Salesforce client's observer, counting into [`Metrics`]: the client knows nothing of
//! idm-sync, idm-sync hands it this adapter.

use std::sync::Arc;

use super::Metrics;
use crate::salesforce::{ApiUsage, CallObserver, CallOutcome, Observer};

struct Counting(Metrics);

impl CallObserver for Counting {
    fn call(&self, operation: &'static str, outcome: CallOutcome) {
        self.0.salesforce_call(operation, outcome.as_str());
    }

    fn api_usage(&self, usage: ApiUsage) {
        self.0.api_usage(usage.used, usage.max);
    }
}

impl Metrics {
    /// An observer for [`crate::salesforce::SalesforceClient::observed`].
    pub fn salesforce_observer(&self) -> Observer {
        Observer::new(Arc::new(Counting(self.clone())))
    }
}
