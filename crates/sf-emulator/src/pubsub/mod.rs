//! The Pub/Sub API (gRPC) for Change Data Capture on `User`: the topic `/data/UserChangeEvent`
//! served on its own port (plain HTTP/2), `GetTopic`, `GetSchema` and `Subscribe`, fed by every
//! `User` write of the org. Facts and choices: README, "Pub/Sub API (change events)".

mod auth;
pub mod bitmap;
mod bus;
pub mod event;
mod origin;
pub mod proto;
mod replay;
pub mod schema;
mod server;
mod status;
mod subscription;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use event::{Change, ChangeType};
pub(crate) use origin::rest_origin;
pub(crate) use server::serve;

use crate::rng::SharedRng;
use bus::Bus;
use schema::{EventSchema, SchemaError};

/// Salesforce's keepalive bound: an empty `FetchResponse` "within 270 seconds".
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(270);
/// A stream owed nothing closes when no `FetchRequest` comes within 60 seconds.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Change events are retained for 72 hours.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(72 * 3600);
/// Events the bus keeps at most (the emulator's bound; Salesforce documents none).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The Pub/Sub API's settings.
#[derive(Debug, Clone)]
pub struct PubSubConfig {
    /// Where the gRPC server listens; `None`: the REST listener's address with a free port.
    pub listen: Option<SocketAddr>,
    /// Longest wait before a keepalive `FetchResponse` while events are owed but none come.
    pub keepalive: Duration,
    /// How long a stream owed no events waits for a `FetchRequest` before it closes.
    pub idle_timeout: Duration,
    pub retention: Duration,
    pub capacity: usize,
}

impl Default for PubSubConfig {
    fn default() -> Self {
        Self {
            listen: None,
            keepalive: DEFAULT_KEEPALIVE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            retention: DEFAULT_RETENTION,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

/// A committed transaction's changes, published as one event each, in order.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// `changeOrigin`: `com/salesforce/api/rest/62.0[;client=…]`, or empty.
    pub origin: String,
    /// `commitUser`: the id of the user whose write it was.
    pub commit_user: String,
    pub changes: Vec<Change>,
}

/// The org's Pub/Sub state: schema, bus, knobs.
#[derive(Debug)]
pub(crate) struct PubSub {
    pub schema: EventSchema,
    pub bus: Bus,
    keepalive_ms: AtomicU64,
    idle_ms: AtomicU64,
    commit_number: AtomicU64,
    rng: SharedRng,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl PubSub {
    pub fn new(config: &PubSubConfig) -> Result<Self, SchemaError> {
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        Ok(Self {
            schema: EventSchema::build()?,
            // Positions start at the clock, so replay ids of an earlier run are never reused.
            bus: Bus::new(now_ms, config.retention, config.capacity),
            keepalive_ms: AtomicU64::new(millis(config.keepalive).max(1)),
            idle_ms: AtomicU64::new(millis(config.idle_timeout).max(1)),
            commit_number: AtomicU64::new(now_ms),
            rng: SharedRng::from_clock(),
        })
    }

    pub fn keepalive(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms.load(Ordering::Relaxed))
    }

    pub fn set_keepalive(&self, d: Duration) {
        self.keepalive_ms.store(millis(d).max(1), Ordering::Relaxed);
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_ms.load(Ordering::Relaxed))
    }

    pub fn set_idle_timeout(&self, d: Duration) {
        self.idle_ms.store(millis(d).max(1), Ordering::Relaxed);
    }

    /// A random UUID (v4 form): event ids, transaction keys, RPC ids.
    pub fn uuid(&self) -> String {
        let hi = self.rng.next_u64();
        let lo = self.rng.next_u64();
        let hi = (hi & !0xF000) | 0x4000;
        let lo = (lo & !(0xC << 60)) | (0x8 << 60);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xFFFF,
            hi & 0xFFFF,
            lo >> 48,
            lo & 0xFFFF_FFFF_FFFF
        )
    }

    /// Publishes a transaction: one event per change, sharing a transaction key and commit
    /// number, numbered from 1. Call it while the write's lock is held, so that events follow
    /// commit order.
    pub fn publish(&self, txn: &Transaction, now: DateTime<Utc>) {
        if txn.changes.is_empty() {
            return;
        }
        let transaction_key = self.uuid();
        let commit_number = self.commit_number.fetch_add(1, Ordering::Relaxed) + 1;
        let mut encoded = Vec::with_capacity(txn.changes.len());
        for (i, change) in txn.changes.iter().enumerate() {
            let header = event::Header {
                change_origin: &txn.origin,
                transaction_key: &transaction_key,
                sequence_number: i32::try_from(i + 1).unwrap_or(i32::MAX),
                commit_timestamp: now.timestamp_millis(),
                commit_number: i64::try_from(commit_number).unwrap_or(i64::MAX),
                commit_user: &txn.commit_user,
            };
            match event::encode(&self.schema, &header, change) {
                Ok(payload) => encoded.push((self.uuid(), payload)),
                // The schema is built from the same field table as the records: not expected.
                Err(e) => tracing::error!(error = %e, "change event not published"),
            }
        }
        self.bus.append(now, encoded);
    }
}
