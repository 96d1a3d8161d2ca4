//! Call counters, which tests and benchmarks use to count Salesforce API calls.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::lock;

#[derive(Debug, Default)]
pub struct Stats {
    /// `"METHOD /path/template"` → calls; the API version segment reads `vXX.X`.
    calls: Mutex<BTreeMap<String, u64>>,
    pub token_calls: AtomicU64,
    pub invalid_grants: AtomicU64,
    pub records_written: AtomicU64,
    /// Pub/Sub API calls by method (`GetTopic`, …): apart from `calls`, which count REST.
    pubsub_calls: Mutex<BTreeMap<String, u64>>,
    pubsub_delivered: AtomicU64,
}

/// What `GET /__emulator/stats` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub calls: BTreeMap<String, u64>,
    /// Calls of `POST /services/oauth2/token`, successful or not.
    pub token_calls: u64,
    /// Token calls answered `invalid_grant` (a refresh token that is expired, revoked or
    /// rotated out; a bad authorization code).
    #[serde(default)]
    pub invalid_grants: u64,
    /// Records created or updated (rolled-back records not counted).
    pub records_written: u64,
    /// API calls counted against the daily allowance (not reset by reset-stats).
    pub api_usage: u64,
    pub daily_limit: u64,
    /// Pub/Sub API (gRPC) calls by method: `GetTopic`, `GetSchema`, `Subscribe`. They do not
    /// count against the REST API allowance.
    #[serde(default)]
    pub pubsub_calls: BTreeMap<String, u64>,
    /// Change events delivered to subscribers.
    #[serde(default)]
    pub pubsub_events_delivered: u64,
}

impl StatsSnapshot {
    /// Calls of one `"METHOD template"` key, 0 if none.
    pub fn calls_of(&self, key: &str) -> u64 {
        self.calls.get(key).copied().unwrap_or(0)
    }

    /// All calls under `/services/data/`.
    pub fn data_calls(&self) -> u64 {
        self.calls
            .iter()
            .filter(|(k, _)| k.contains(" /services/data/"))
            .map(|(_, v)| v)
            .sum()
    }
}

impl Stats {
    pub fn record_call(&self, method: &str, template: &str) {
        let key = format!("{method} {}", template.replace("{version}", "vXX.X"));
        *lock(&self.calls).entry(key).or_insert(0) += 1;
    }

    pub fn record_pubsub_call(&self, method: &str) {
        *lock(&self.pubsub_calls)
            .entry(method.to_owned())
            .or_insert(0) += 1;
    }

    pub fn add_pubsub_delivered(&self, n: u64) {
        self.pubsub_delivered.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_written(&self, n: u64) {
        self.records_written.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self, api_usage: u64, daily_limit: u64) -> StatsSnapshot {
        StatsSnapshot {
            calls: lock(&self.calls).clone(),
            token_calls: self.token_calls.load(Ordering::Relaxed),
            invalid_grants: self.invalid_grants.load(Ordering::Relaxed),
            records_written: self.records_written.load(Ordering::Relaxed),
            api_usage,
            daily_limit,
            pubsub_calls: lock(&self.pubsub_calls).clone(),
            pubsub_events_delivered: self.pubsub_delivered.load(Ordering::Relaxed),
        }
    }

    pub fn reset(&self) {
        lock(&self.calls).clear();
        self.token_calls.store(0, Ordering::Relaxed);
        self.invalid_grants.store(0, Ordering::Relaxed);
        self.records_written.store(0, Ordering::Relaxed);
        lock(&self.pubsub_calls).clear();
        self.pubsub_delivered.store(0, Ordering::Relaxed);
    }
}
