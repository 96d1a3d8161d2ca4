//! The metrics idm-sync exports: their names, help texts and labels, and the few calls the
//! roles make to move them. Counts only: no label ever carries a user id, a name or a secret.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::counter::{Counter, Gauge};
use super::encode::TextEncoder;
use super::family::Family;
use super::histogram::{Histogram, LATENCY_BUCKETS, RUN_BUCKETS};
use super::registry::Registry;

/// A handle on one registry and its families; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Catalog>);

struct Catalog {
    registry: Registry,
    events_published: Arc<Family<Counter, 0>>,
    events_consumed: Arc<Family<Counter, 1>>,
    sync_latency: Arc<Family<Histogram, 1>>,
    salesforce_calls: Arc<Family<Counter, 3>>,
    api_used: Arc<Family<Gauge, 1>>,
    api_limit: Arc<Family<Gauge, 1>>,
    recon_runs: Arc<Family<Counter, 3>>,
    recon_duration: Arc<Family<Histogram, 2>>,
    recon_last_duration: Arc<Family<Gauge, 2>>,
    worker_paused: Arc<Family<Gauge, 2>>,
}

/// The registry every role of this process reports to (so `all` shows everything in one scrape).
static PROCESS: LazyLock<Metrics> = LazyLock::new(Metrics::isolated);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The process-wide registry.
    pub fn process() -> Metrics {
        PROCESS.clone()
    }

    /// A registry of its own (tests, which run many applications in one process).
    pub fn isolated() -> Metrics {
        let r = Registry::default();
        let catalog = Catalog {
            events_published: r.register(Family::with_default(
                "idm_relay_events_published_total",
                "Change events the outbox relay published and the broker confirmed.",
                [],
            )),
            events_consumed: r.register(Family::with_default(
                "idm_worker_events_consumed_total",
                "Change events the outbound workers acknowledged (in step with Salesforce, or recorded as a sync failure), by system (connector).",
                ["system"],
            )),
            sync_latency: r.register(Family::new(
                "idm_sync_latency_seconds",
                "From the commit of a managed-user change to Salesforce acknowledging its write, by system (connector).",
                ["system"],
                || Histogram::new(LATENCY_BUCKETS),
            )),
            salesforce_calls: r.register(Family::with_default(
                "idm_salesforce_api_calls_total",
                "HTTP requests to Salesforce (REST and token endpoint), each attempt counted, by system (connector), operation and outcome.",
                ["system", "operation", "outcome"],
            )),
            api_used: r.register(Family::with_default(
                "idm_salesforce_api_usage_used",
                "API requests the org used in the last 24 hours, from the latest Sforce-Limit-Info seen, by system (connector).",
                ["system"],
            )),
            api_limit: r.register(Family::with_default(
                "idm_salesforce_api_usage_limit",
                "The org's daily API request allowance, from the latest Sforce-Limit-Info seen, by system (connector).",
                ["system"],
            )),
            recon_runs: r.register(Family::with_default(
                "idm_recon_runs_total",
                "Reconciliation runs that ended, by system (connector), mapping and final state.",
                ["system", "mapping", "state"],
            )),
            recon_duration: r.register(Family::new(
                "idm_recon_duration_seconds",
                "Duration of reconciliation runs, by system (connector) and mapping.",
                ["system", "mapping"],
                || Histogram::new(RUN_BUCKETS),
            )),
            recon_last_duration: r.register(Family::with_default(
                "idm_recon_last_duration_seconds",
                "Duration of the last reconciliation run that ended, by system (connector) and mapping.",
                ["system", "mapping"],
            )),
            worker_paused: r.register(Family::with_default(
                "idm_worker_paused",
                "1 while the outbound worker has stopped consuming, by reason (salesforce_authorization: the connector needs an operator to authorize it again; connector_disabled: the connector is disabled), by system (connector).",
                ["system", "reason"],
            )),
            registry: r,
        };
        // Series without labels exist from the start, so that rates begin at zero.
        catalog.events_published.with([]);
        Metrics(Arc::new(catalog))
    }

    pub fn published(&self, events: usize) {
        self.0.events_published.with([]).inc_by(events as u64);
    }

    pub fn consumed(&self, system: &str, events: usize) {
        self.0.events_consumed.with([system]).inc_by(events as u64);
    }

    /// A change the connector of `system` acknowledged, `latency` after its commit.
    pub fn synced(&self, system: &str, latency: Duration) {
        self.0
            .sync_latency
            .with([system])
            .observe(latency.as_secs_f64());
    }

    /// Makes a worker's series exist from its start (at zero), so rates begin at zero.
    pub fn worker_started(&self, system: &str) {
        self.0.events_consumed.with([system]);
        self.0.sync_latency.with([system]);
    }

    pub fn salesforce_call(&self, system: &str, operation: &str, outcome: &str) {
        self.0
            .salesforce_calls
            .with([system, operation, outcome])
            .inc();
    }

    pub fn api_usage(&self, system: &str, used: u64, limit: u64) {
        self.0.api_used.with([system]).set(used as f64);
        self.0.api_limit.with([system]).set(limit as f64);
    }

    /// A reconciliation run ended in `state` (SUCCESS, FAILED, CANCELED) after `took`.
    pub fn recon_finished(&self, system: &str, mapping: &str, state: &str, took: Duration) {
        self.0.recon_runs.with([system, mapping, state]).inc();
        self.0
            .recon_duration
            .with([system, mapping])
            .observe(took.as_secs_f64());
        self.0
            .recon_last_duration
            .with([system, mapping])
            .set(took.as_secs_f64());
    }

    pub fn worker_paused(&self, system: &str, reason: &str, paused: bool) {
        self.0
            .worker_paused
            .with([system, reason])
            .set(if paused { 1.0 } else { 0.0 });
    }

    /// Writes every family of this registry.
    pub fn encode(&self, out: &mut TextEncoder) {
        self.0.registry.encode(out);
    }
}
