//! One `Subscribe` stream (Pub/Sub API reference, "Subscribe RPC Method"; guide, "Pull
//! Subscription and Flow Control"):
//!
//! - the first `FetchRequest` names the topic and where to start (LATEST, EARLIEST, or CUSTOM
//!   after a replay id); later requests only add to the events owed, and must not name another
//!   topic (an empty name counts as the same);
//! - at most 100 events are owed at once: a request for more counts as up to 100 (documented);
//!   a request for none or fewer is refused;
//! - events go out in commit order, never more than owed; each response reports what is still
//!   owed (`pending_num_requested`);
//! - while events are owed and none come, an empty response with the latest replay id goes out
//!   within the keepalive interval; a stream owed nothing closes when no request comes within
//!   the idle timeout;
//! - a subscriber whose next events expired ends with the expired-replay-id error (our choice:
//!   it cannot be resumed without a gap either).

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tonic::{Status, Streaming};

use super::bus::{Expired, Signal, StoredEvent};
use super::proto::{ConsumerEvent, FetchRequest, FetchResponse, ProducerEvent, ReplayPreset};
use super::schema::TOPIC;
use super::status::PubSubError;
use super::{PubSub, replay};
use crate::Shared;

/// Most events owed to one stream at a time.
pub const MAX_OWED: u32 = 100;

type Out = mpsc::Sender<Result<FetchResponse, Status>>;

/// How a stream ends.
enum End {
    /// The client left, or the stream closed for idleness.
    Quiet,
    Error(PubSubError),
}

struct Stream {
    shared: Arc<Shared>,
    tenant: String,
    rpc_id: String,
    out: Out,
    cursor: u64,
    owed: u32,
    last_response: Instant,
    /// The drop order this stream has already seen (later orders apply to it).
    drop_seen: u64,
    /// Events left before a drop order ends the stream.
    drop_countdown: Option<u32>,
}

fn pubsub(shared: &Shared) -> &PubSub {
    &shared.pubsub
}

/// Runs a stream to its end; errors are sent as the stream's final status.
pub async fn run(
    shared: Arc<Shared>,
    tenant: String,
    rpc_id: String,
    mut requests: Streaming<FetchRequest>,
    out: Out,
) {
    let mut signal = pubsub(&shared).bus.watch();
    let drop_seen = signal.borrow_and_update().drop_generation;
    // Waiting for the first request must not hold up the server's shutdown.
    let first = tokio::select! {
        msg = requests.message() => match msg {
            Ok(Some(first)) => first,
            Ok(None) | Err(_) => return,
        },
        _ = signal.wait_for(|s| s.shutdown) => return,
    };
    let mut stream = Stream {
        shared,
        tenant,
        rpc_id,
        out,
        cursor: 0,
        owed: 0,
        last_response: Instant::now(),
        drop_seen,
        drop_countdown: None,
    };
    let end = match stream.start(&first) {
        Ok(()) => stream.serve(&mut requests, &mut signal).await,
        Err(e) => End::Error(e),
    };
    if let End::Error(e) = end {
        let status = e.into_status(&stream.rpc_id);
        let _ = stream.out.send(Err(status)).await;
    }
}

impl Stream {
    fn start(&mut self, first: &FetchRequest) -> Result<(), PubSubError> {
        let topic = first.topic_name.trim();
        if topic.is_empty() {
            return Err(PubSubError::TopicBlank);
        }
        if topic != TOPIC {
            return Err(PubSubError::TopicNotFound {
                tenant: self.tenant.clone(),
                topic: topic.to_owned(),
            });
        }
        let bus = &pubsub(&self.shared).bus;
        let now = Utc::now();
        self.cursor = match ReplayPreset::try_from(first.replay_preset) {
            Ok(ReplayPreset::Earliest) => bus.earliest(now),
            Ok(ReplayPreset::Custom) => {
                if first.replay_id.is_empty() {
                    return Err(PubSubError::ReplayMissing);
                }
                replay::decode(&first.replay_id)
                    .filter(|p| bus.resumable(*p, now))
                    .ok_or(PubSubError::ReplayCorrupted)?
            }
            Ok(ReplayPreset::Latest) | Err(_) => bus.latest(),
        };
        self.request(first.num_requested)
    }

    fn request(&mut self, n: i32) -> Result<(), PubSubError> {
        let n = u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or(PubSubError::RequestedInvalid)?;
        self.owed = self.owed.saturating_add(n).min(MAX_OWED);
        Ok(())
    }

    async fn serve(
        &mut self,
        requests: &mut Streaming<FetchRequest>,
        signal: &mut watch::Receiver<Signal>,
    ) -> End {
        let mut requests_open = true;
        loop {
            match self.deliver().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(end) => return end,
            }
            let ps = pubsub(&self.shared);
            let wait = if self.owed > 0 {
                ps.keepalive()
            } else {
                ps.idle_timeout()
            };
            let deadline = self.last_response + wait;
            let out = self.out.clone();
            tokio::select! {
                msg = requests.message(), if requests_open => match msg {
                    Ok(Some(req)) => {
                        let topic = req.topic_name.trim();
                        if !topic.is_empty() && topic != TOPIC {
                            return End::Error(PubSubError::TopicMismatch {
                                first: TOPIC.to_owned(),
                                got: topic.to_owned(),
                            });
                        }
                        if let Err(e) = self.request(req.num_requested) {
                            return End::Error(e);
                        }
                    }
                    // The client stops sending: what it is owed still goes out.
                    Ok(None) => requests_open = false,
                    Err(_) => return End::Quiet,
                },
                changed = signal.changed() => {
                    if changed.is_err() {
                        return End::Quiet;
                    }
                    let sig = *signal.borrow_and_update();
                    if sig.shutdown {
                        return End::Error(PubSubError::Unavailable);
                    }
                    if sig.drop_generation > self.drop_seen {
                        self.drop_seen = sig.drop_generation;
                        if sig.drop_after == 0 {
                            return End::Error(PubSubError::Unavailable);
                        }
                        self.drop_countdown = Some(sig.drop_after);
                    }
                }
                () = sleep_until(deadline) => {
                    if self.owed == 0 {
                        return End::Quiet;
                    }
                    if let Err(end) = self.keepalive().await {
                        return end;
                    }
                }
                () = out.closed() => return End::Quiet,
            }
        }
    }

    /// Sends the events owed that are there; `Ok(true)` when some went out.
    async fn deliver(&mut self) -> Result<bool, End> {
        if self.owed == 0 {
            return Ok(false);
        }
        let mut max = self.owed;
        if let Some(left) = self.drop_countdown {
            max = max.min(left);
        }
        let ps = pubsub(&self.shared);
        let events = match ps.bus.read_after(self.cursor, max as usize, Utc::now()) {
            Ok(e) if e.is_empty() => return Ok(false),
            Ok(e) => e,
            Err(Expired) => return Err(End::Error(PubSubError::ReplayCorrupted)),
        };
        let n = u32::try_from(events.len()).unwrap_or(u32::MAX);
        let last = events.last().map_or(self.cursor, |e| e.seq);
        self.owed = self.owed.saturating_sub(n);
        self.cursor = last;
        let response = FetchResponse {
            events: events.iter().map(|e| consumer_event(ps, e)).collect(),
            latest_replay_id: replay::encode(last),
            rpc_id: self.rpc_id.clone(),
            pending_num_requested: i32::try_from(self.owed).unwrap_or(i32::MAX),
        };
        self.send(response).await?;
        self.shared.stats.add_pubsub_delivered(u64::from(n));
        if let Some(left) = self.drop_countdown {
            let left = left.saturating_sub(n);
            if left == 0 {
                return Err(End::Error(PubSubError::Unavailable));
            }
            self.drop_countdown = Some(left);
        }
        Ok(true)
    }

    async fn keepalive(&mut self) -> Result<(), End> {
        let latest = pubsub(&self.shared).bus.latest();
        let response = FetchResponse {
            events: Vec::new(),
            latest_replay_id: replay::encode(latest),
            rpc_id: self.rpc_id.clone(),
            pending_num_requested: i32::try_from(self.owed).unwrap_or(i32::MAX),
        };
        self.send(response).await
    }

    async fn send(&mut self, response: FetchResponse) -> Result<(), End> {
        self.out.send(Ok(response)).await.map_err(|_| End::Quiet)?;
        self.last_response = Instant::now();
        Ok(())
    }
}

fn consumer_event(ps: &PubSub, e: &StoredEvent) -> ConsumerEvent {
    ConsumerEvent {
        event: Some(ProducerEvent {
            id: e.id.clone(),
            schema_id: ps.schema.id.clone(),
            payload: e.payload.clone(),
            headers: Vec::new(),
        }),
        replay_id: replay::encode(e.seq),
    }
}
