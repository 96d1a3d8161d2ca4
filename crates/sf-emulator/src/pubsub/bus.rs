//! The org's event bus: change events in commit order, each at a position one above the last;
//! kept for the retention window (Salesforce: 72 hours) and at most `capacity` of them, so memory
//! stays bounded. Subscribers learn of new events, of a "drop the streams" order and of shutdown
//! through one `watch` signal.
//!
//! A position `p` can be resumed from (a CUSTOM replay id) while `expired_through < p <= latest`:
//! every event after it is still kept, and `p` itself has not expired (Salesforce refuses a replay
//! id "outside the retention window").

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;

use crate::lock;

/// One published event.
#[derive(Debug)]
pub struct StoredEvent {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// The event's UUID (`ProducerEvent.id`).
    pub id: String,
    pub payload: Vec<u8>,
}

/// What subscribers watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signal {
    /// Position of the newest event.
    pub latest: u64,
    /// Bumped by each "drop the streams" order; streams older than the order end after
    /// `drop_after` more events.
    pub drop_generation: u64,
    pub drop_after: u32,
    pub shutdown: bool,
}

/// Events after a position were dropped (retention or capacity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("events after this position are no longer retained")]
pub struct Expired;

#[derive(Debug)]
struct Inner {
    events: VecDeque<Arc<StoredEvent>>,
    latest: u64,
    /// Every position up to this one has been dropped.
    expired_through: u64,
    retention: Duration,
    capacity: usize,
}

impl Inner {
    fn prune(&mut self, now: DateTime<Utc>) {
        // A retention too long to subtract keeps everything.
        let oldest_kept = now
            .checked_sub_signed(self.retention)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        while let Some(front) = self.events.front() {
            if front.at >= oldest_kept && self.events.len() <= self.capacity {
                break;
            }
            self.expired_through = front.seq;
            self.events.pop_front();
        }
    }
}

#[derive(Debug)]
pub struct Bus {
    inner: Mutex<Inner>,
    signal: watch::Sender<Signal>,
}

impl Bus {
    /// An empty bus whose first event will be at `start + 1`.
    pub fn new(start: u64, retention: std::time::Duration, capacity: usize) -> Self {
        let (signal, _) = watch::channel(Signal {
            latest: start,
            ..Signal::default()
        });
        Self {
            inner: Mutex::new(Inner {
                events: VecDeque::new(),
                latest: start,
                expired_through: start.saturating_sub(1),
                retention: to_chrono(retention),
                capacity: capacity.max(1),
            }),
            signal,
        }
    }

    /// Appends events (`(uuid, payload)`) in order, each at the next position.
    pub fn append(&self, now: DateTime<Utc>, events: Vec<(String, Vec<u8>)>) {
        if events.is_empty() {
            return;
        }
        let latest = {
            let mut inner = lock(&self.inner);
            for (id, payload) in events {
                inner.latest += 1;
                let seq = inner.latest;
                inner.events.push_back(Arc::new(StoredEvent {
                    seq,
                    at: now,
                    id,
                    payload,
                }));
            }
            inner.prune(now);
            inner.latest
        };
        self.signal.send_modify(|s| s.latest = latest);
    }

    /// Up to `max` events after position `cursor`, oldest first.
    pub fn read_after(
        &self,
        cursor: u64,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Arc<StoredEvent>>, Expired> {
        let mut inner = lock(&self.inner);
        inner.prune(now);
        if cursor < inner.expired_through {
            return Err(Expired);
        }
        let Some(first) = inner.events.front().map(|e| e.seq) else {
            return Ok(Vec::new());
        };
        // Positions are consecutive, so the next event's index is arithmetic.
        let skip = usize::try_from((cursor + 1).saturating_sub(first)).unwrap_or(usize::MAX);
        Ok(inner.events.iter().skip(skip).take(max).cloned().collect())
    }

    /// The position of the newest event.
    pub fn latest(&self) -> u64 {
        lock(&self.inner).latest
    }

    /// The position before the oldest retained event (EARLIEST starts here).
    pub fn earliest(&self, now: DateTime<Utc>) -> u64 {
        let mut inner = lock(&self.inner);
        inner.prune(now);
        inner.expired_through
    }

    /// Whether a subscription may resume after position `p`.
    pub fn resumable(&self, p: u64, now: DateTime<Utc>) -> bool {
        let mut inner = lock(&self.inner);
        inner.prune(now);
        inner.expired_through < p && p <= inner.latest
    }

    pub fn set_retention(&self, retention: std::time::Duration, now: DateTime<Utc>) {
        let mut inner = lock(&self.inner);
        inner.retention = to_chrono(retention);
        inner.prune(now);
    }

    pub fn retention(&self) -> std::time::Duration {
        lock(&self.inner)
            .retention
            .to_std()
            .unwrap_or(std::time::Duration::ZERO)
    }

    /// Events kept now.
    pub fn len(&self) -> usize {
        lock(&self.inner).events.len()
    }

    pub fn watch(&self) -> watch::Receiver<Signal> {
        self.signal.subscribe()
    }

    /// Ends the streams open now after `after` more events each (0: at once).
    pub fn drop_streams(&self, after: u32) {
        self.signal.send_modify(|s| {
            s.drop_generation += 1;
            s.drop_after = after;
        });
    }

    /// Ends every stream (the emulator is stopping).
    pub fn shutdown(&self) {
        self.signal.send_modify(|s| s.shutdown = true);
    }
}

fn to_chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u8) -> (String, Vec<u8>) {
        (format!("e{n}"), vec![n])
    }

    #[test]
    fn positions_climb_and_reads_follow_the_cursor() {
        let bus = Bus::new(100, std::time::Duration::from_secs(3600), 10);
        let now = Utc::now();
        bus.append(now, vec![ev(1), ev(2), ev(3)]);
        assert_eq!(bus.latest(), 103);
        let all = bus.read_after(bus.earliest(now), 10, now).unwrap();
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [101, 102, 103]
        );
        let rest = bus.read_after(101, 1, now).unwrap();
        assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [102]);
        assert!(bus.read_after(103, 10, now).unwrap().is_empty());
        assert!(bus.resumable(100, now) && bus.resumable(103, now));
        assert!(!bus.resumable(104, now));
    }

    #[test]
    fn retention_and_capacity_expire_positions() {
        let bus = Bus::new(0, std::time::Duration::from_secs(3600), 2);
        let now = Utc::now();
        bus.append(now, vec![ev(1), ev(2), ev(3)]);
        assert_eq!(bus.len(), 2);
        assert!(!bus.resumable(1, now), "its event was dropped");
        assert!(matches!(bus.read_after(0, 10, now), Err(Expired)));
        assert!(bus.resumable(2, now));
        bus.set_retention(std::time::Duration::ZERO, now + Duration::seconds(1));
        assert_eq!(bus.len(), 0);
        assert!(!bus.resumable(3, now + Duration::seconds(1)));
        assert_eq!(bus.earliest(now), 3);
    }
}
