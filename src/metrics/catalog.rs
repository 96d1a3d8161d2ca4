//! The metrics idm-sync exports: their names, help texts and labels, and the few calls the
//! roles make to move them. Counts only: no label ever carries a user id, a name or a secret.
//! Names are given without the suffixes the OpenMetrics encoder adds (`_total` for counters,
//! the unit for `register_with_unit`), so `events_published` is scraped as
//! `idm_relay_events_published_total`.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::labels::{
    BuildLabels, CallLabels, HttpLabels, PauseLabels, RunEndLabels, RunLabels, SkipLabels,
    SystemLabels,
};
use super::process::ProcessCollector;

/// Upper bounds (seconds) for sync latencies and HTTP requests: 5 ms to 60 s.
const LATENCY_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Upper bounds (seconds) for reconciliation runs: 1 s to 2 h.
const RUN_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn run_histogram() -> Histogram {
    Histogram::new(RUN_BUCKETS)
}

/// A handle on one registry and its families; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Catalog>);

struct Catalog {
    registry: Registry,
    events_published: Counter,
    events_consumed: Family<SystemLabels, Counter>,
    sync_latency: Histograms<SystemLabels>,
    salesforce_calls: Family<CallLabels, Counter>,
    api_used: Family<SystemLabels, Gauge>,
    api_limit: Family<SystemLabels, Gauge>,
    recon_runs: Family<RunEndLabels, Counter>,
    recon_duration: Histograms<RunLabels>,
    recon_last_duration: Family<RunLabels, FloatGauge>,
    worker_paused: Family<PauseLabels, Gauge>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<HttpLabels>,
    events_received: Family<SystemLabels, Counter>,
    events_applied: Family<SystemLabels, Counter>,
    events_skipped: Family<SkipLabels, Counter>,
    events_lag: Histograms<SystemLabels>,
    events_subscribed: Family<SystemLabels, Gauge>,
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
        let mut c = Catalog {
            events_published: Counter::default(),
            events_consumed: Family::default(),
            sync_latency: Family::new_with_constructor(latency_histogram),
            salesforce_calls: Family::default(),
            api_used: Family::default(),
            api_limit: Family::default(),
            recon_runs: Family::default(),
            recon_duration: Family::new_with_constructor(run_histogram),
            recon_last_duration: Family::default(),
            worker_paused: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            events_received: Family::default(),
            events_applied: Family::default(),
            events_skipped: Family::default(),
            events_lag: Family::new_with_constructor(latency_histogram),
            events_subscribed: Family::default(),
            registry: Registry::default(),
        };
        c.registry.register(
            "idm_build",
            "The version of this idm-sync process (always 1).",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        c.registry.register(
            "idm_relay_events_published",
            "Change events the outbox relay published and the broker confirmed.",
            c.events_published.clone(),
        );
        c.registry.register(
            "idm_worker_events_consumed",
            "Change events the outbound workers acknowledged (in step with Salesforce, or recorded as a sync failure), by system (connector).",
            c.events_consumed.clone(),
        );
        c.registry.register_with_unit(
            "idm_sync_latency",
            "From the commit of a managed-user change to Salesforce acknowledging its write, by system (connector).",
            Unit::Seconds,
            c.sync_latency.clone(),
        );
        c.registry.register(
            "idm_salesforce_api_calls",
            "HTTP requests to Salesforce (REST and token endpoint), each attempt counted, by system (connector), operation and outcome.",
            c.salesforce_calls.clone(),
        );
        c.registry.register(
            "idm_salesforce_api_usage_used",
            "API requests the org used in the last 24 hours, from the latest Sforce-Limit-Info seen, by system (connector).",
            c.api_used.clone(),
        );
        c.registry.register(
            "idm_salesforce_api_usage_limit",
            "The org's daily API request allowance, from the latest Sforce-Limit-Info seen, by system (connector).",
            c.api_limit.clone(),
        );
        c.registry.register(
            "idm_recon_runs",
            "Reconciliation runs that ended, by system (connector), mapping and final state.",
            c.recon_runs.clone(),
        );
        c.registry.register_with_unit(
            "idm_recon_duration",
            "Duration of reconciliation runs, by system (connector) and mapping.",
            Unit::Seconds,
            c.recon_duration.clone(),
        );
        c.registry.register_with_unit(
            "idm_recon_last_duration",
            "Duration of the last reconciliation run that ended, by system (connector) and mapping.",
            Unit::Seconds,
            c.recon_last_duration.clone(),
        );
        c.registry.register(
            "idm_worker_paused",
            "1 while the outbound worker has stopped consuming, by reason (salesforce_authorization: the connector needs an operator to authorize it again; connector_disabled: the connector is disabled), by system (connector).",
            c.worker_paused.clone(),
        );
        c.registry.register(
            "idm_http_requests",
            "HTTP requests this process answered, by method, matched route and status.",
            c.http_requests.clone(),
        );
        c.registry.register_with_unit(
            "idm_http_request_duration",
            "From a request's head read to its response head written, by method, matched route and status.",
            Unit::Seconds,
            c.http_duration.clone(),
        );
        c.registry.register(
            "idm_events_received",
            "Salesforce change events received from the Pub/Sub API, by system (connector).",
            c.events_received.clone(),
        );
        c.registry.register(
            "idm_events_applied",
            "Change events applied to managed users (their records reconciled), by system (connector).",
            c.events_applied.clone(),
        );
        c.registry.register(
            "idm_events_skipped",
            "Change events that needed nothing, by system (connector) and reason (echo: made by idm-sync's own writes; entity: not a User event).",
            c.events_skipped.clone(),
        );
        c.registry.register_with_unit(
            "idm_events_lag",
            "From Salesforce's commit of a change to the commit of its managed-user writes, by system (connector).",
            Unit::Seconds,
            c.events_lag.clone(),
        );
        c.registry.register(
            "idm_events_subscribed",
            "1 while this process holds the change event subscription of the connector and its stream is open, by system (connector).",
            c.events_subscribed.clone(),
        );
        c.registry.register_collector(Box::new(ProcessCollector));
        Metrics(Arc::new(c))
    }

    pub fn published(&self, events: usize) {
        self.0.events_published.inc_by(events as u64);
    }

    pub fn consumed(&self, system: &str, events: usize) {
        self.0
            .events_consumed
            .get_or_create(&system_labels(system))
            .inc_by(events as u64);
    }

    /// A change the connector of `system` acknowledged, `latency` after its commit.
    pub fn synced(&self, system: &str, latency: Duration) {
        self.0
            .sync_latency
            .get_or_create(&system_labels(system))
            .observe(latency.as_secs_f64());
    }

    /// Makes a worker's series exist from its start (at zero), so rates begin at zero.
    pub fn worker_started(&self, system: &str) {
        let labels = system_labels(system);
        drop(self.0.events_consumed.get_or_create(&labels));
        drop(self.0.sync_latency.get_or_create(&labels));
    }

    pub fn salesforce_call(&self, system: &str, operation: &str, outcome: &str) {
        self.0
            .salesforce_calls
            .get_or_create(&CallLabels {
                system: system.to_owned(),
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn api_usage(&self, system: &str, used: u64, limit: u64) {
        let labels = system_labels(system);
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.0.api_used.get_or_create(&labels).set(clamp(used));
        self.0.api_limit.get_or_create(&labels).set(clamp(limit));
    }

    /// A reconciliation run ended in `state` (SUCCESS, FAILED, CANCELED) after `took`.
    pub fn recon_finished(&self, system: &str, mapping: &str, state: &str, took: Duration) {
        self.0
            .recon_runs
            .get_or_create(&RunEndLabels {
                system: system.to_owned(),
                mapping: mapping.to_owned(),
                state: state.to_owned(),
            })
            .inc();
        let run = RunLabels {
            system: system.to_owned(),
            mapping: mapping.to_owned(),
        };
        self.0
            .recon_duration
            .get_or_create(&run)
            .observe(took.as_secs_f64());
        self.0
            .recon_last_duration
            .get_or_create(&run)
            .set(took.as_secs_f64());
    }

    pub fn worker_paused(&self, system: &str, reason: &str, paused: bool) {
        self.0
            .worker_paused
            .get_or_create(&PauseLabels {
                system: system.to_owned(),
                reason: reason.to_owned(),
            })
            .set(i64::from(paused));
    }

    /// An HTTP exchange answered `labels.status` after `took`.
    pub fn http_request(&self, labels: &HttpLabels, took: Duration) {
        self.0.http_requests.get_or_create(labels).inc();
        self.0
            .http_duration
            .get_or_create(labels)
            .observe(took.as_secs_f64());
    }

    pub fn events_received(&self, system: &str, events: usize) {
        self.0
            .events_received
            .get_or_create(&system_labels(system))
            .inc_by(events as u64);
    }

    /// Events applied, each `lag` after Salesforce committed it.
    pub fn events_applied(&self, system: &str, lags: &[Duration]) {
        let labels = system_labels(system);
        self.0
            .events_applied
            .get_or_create(&labels)
            .inc_by(lags.len() as u64);
        let histogram = self.0.events_lag.get_or_create(&labels);
        for lag in lags {
            histogram.observe(lag.as_secs_f64());
        }
    }

    pub fn events_skipped(&self, system: &str, reason: &str, events: usize) {
        self.0
            .events_skipped
            .get_or_create(&SkipLabels {
                system: system.to_owned(),
                reason: reason.to_owned(),
            })
            .inc_by(events as u64);
    }

    pub fn events_subscribed(&self, system: &str, subscribed: bool) {
        self.0
            .events_subscribed
            .get_or_create(&system_labels(system))
            .set(i64::from(subscribed));
    }

    pub(super) fn registry(&self) -> &Registry {
        &self.0.registry
    }
}

fn system_labels(system: &str) -> SystemLabels {
    SystemLabels {
        system: system.to_owned(),
    }
}
