//! The connection cap: a semaphore whose permit a connection holds until it closes. The
//! accept loop takes a permit *before* accepting, so at the cap new connections wait in the
//! kernel's accept backlog (their requests are served as soon as a slot frees) rather than
//! being accepted and closed: a burst of idle connections delays other clients by at most
//! the header-read timeout instead of making them fail, and refusing costs the server
//! nothing. When the backlog too is full the kernel drops new SYNs and clients retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shared by the listeners it caps together (the API's HTTP and HTTPS listeners share one, so
/// the bound is per process). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnectionCap(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    permits: Arc<Semaphore>,
    max: usize,
    /// Which listeners, for the log lines.
    scope: &'static str,
    /// Set while an episode at the cap lasts, so it is logged once, not once per connection.
    at_cap: AtomicBool,
    /// Free slots that end an episode: some room, not a single slot, so a steady flood that
    /// keeps the server at the cap stays one episode.
    resume_at: usize,
}

impl ConnectionCap {
    /// At most `max` connections (at least one).
    pub fn new(max: usize, scope: &'static str) -> ConnectionCap {
        let max = max.max(1);
        ConnectionCap(Arc::new(Inner {
            permits: Arc::new(Semaphore::new(max)),
            max,
            scope,
            at_cap: AtomicBool::new(false),
            resume_at: (max / 4).max(1),
        }))
    }

    pub fn max(&self) -> usize {
        self.0.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.max - self.0.permits.available_permits()
    }

    /// A slot for the next connection, waiting while every slot is taken. `None` only if the
    /// semaphore were closed, which nothing does.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        let inner = &self.0;
        if let Ok(permit) = inner.permits.clone().try_acquire_owned() {
            self.note_room();
            return Some(permit);
        }
        if !inner.at_cap.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                listeners = inner.scope,
                max_connections = inner.max,
                "connection cap reached: new connections wait in the kernel's accept backlog until one closes (raise IDM_HTTP_MAX_CONNECTIONS if this is legitimate load)"
            );
        }
        let permit = inner.permits.clone().acquire_owned().await.ok()?;
        self.note_room();
        Some(permit)
    }

    fn note_room(&self) {
        let inner = &self.0;
        if inner.at_cap.load(Ordering::Relaxed)
            && inner.permits.available_permits() >= inner.resume_at
            && inner.at_cap.swap(false, Ordering::Relaxed)
        {
            tracing::info!(
                listeners = inner.scope,
                open = self.open(),
                max_connections = inner.max,
                "connections back under the cap"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slot_frees_when_a_permit_drops() {
        let cap = ConnectionCap::new(2, "test");
        let a = cap.acquire().await.unwrap();
        let _b = cap.acquire().await.unwrap();
        assert_eq!(cap.open(), 2);
        let waiting = tokio::spawn({
            let cap = cap.clone();
            async move { cap.acquire().await.is_some() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the third waits while two are open");
        drop(a);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn an_episode_ends_only_with_room_to_spare() {
        let cap = ConnectionCap::new(8, "test");
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(cap.acquire().await.unwrap());
        }
        let waiter = tokio::spawn({
            let cap = cap.clone();
            async move { cap.acquire().await }
        });
        tokio::task::yield_now().await;
        assert!(cap.0.at_cap.load(Ordering::Relaxed));
        held.pop();
        held.push(waiter.await.unwrap().unwrap());
        assert!(
            cap.0.at_cap.load(Ordering::Relaxed),
            "one freed slot taken again: the same episode"
        );
        held.truncate(4);
        let _next = cap.acquire().await.unwrap();
        assert!(!cap.0.at_cap.load(Ordering::Relaxed), "room again: ended");
    }
}
