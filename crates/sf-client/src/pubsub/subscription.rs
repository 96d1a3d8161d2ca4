//! A `Subscribe` stream with flow control: the subscriber asks for at most `batch` events (≤ 100,
//! the API's limit) and asks for more only when it comes back for the next batch, that is, once
//! it has applied the previous one. A slow subscriber thus holds events in Salesforce's event
//! bus, never in memory.

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::connection::PubSub;
use super::errors::PubSubError;
use super::event::ChangeEvent;
use super::proto::{FetchRequest, FetchResponse, ReplayPreset};

/// The most events one `FetchRequest` may ask for.
pub const MAX_BATCH: u16 = 100;

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Events published from now on.
    Latest,
    /// Every retained event.
    Earliest,
    /// The events after this stored replay id.
    After(Vec<u8>),
}

/// What one response brought.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// In the order Salesforce committed them; empty for a keepalive.
    pub events: Vec<ChangeEvent>,
    /// The topic's latest replay id (a keepalive's way of saying where the stream stands).
    pub latest_replay_id: Vec<u8>,
}

#[derive(Debug)]
pub struct Subscription {
    pubsub: PubSub,
    topic: String,
    batch: i32,
    /// Events asked for and not yet received, as the server last counted them.
    owed: i32,
    requests: mpsc::Sender<FetchRequest>,
    responses: tonic::Streaming<FetchResponse>,
}

impl PubSub {
    /// Opens a `Subscribe` stream on `topic` from `start`, asking for `batch` events (1 to 100).
    pub async fn subscribe(
        &self,
        topic: &str,
        start: Replay,
        batch: u16,
    ) -> Result<Subscription, PubSubError> {
        let batch = i32::from(batch.clamp(1, MAX_BATCH));
        let (preset, replay_id) = match start {
            Replay::Latest => (ReplayPreset::Latest, Vec::new()),
            Replay::Earliest => (ReplayPreset::Earliest, Vec::new()),
            Replay::After(id) => (ReplayPreset::Custom, id),
        };
        let first = FetchRequest {
            topic_name: topic.to_owned(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: batch,
            auth_refresh: String::new(),
        };
        let mut refreshed = false;
        loop {
            let (md, generation) = self.auth().await?;
            // Room for the first request and a top-up: more are never outstanding.
            let (tx, rx) = mpsc::channel::<FetchRequest>(2);
            let _ = tx.try_send(first.clone());
            let outgoing = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|r| (r, rx))
            });
            let mut request = tonic::Request::new(outgoing.boxed());
            *request.metadata_mut() = md;
            match self.client().subscribe(request).await {
                Ok(response) => {
                    return Ok(Subscription {
                        pubsub: self.clone(),
                        topic: topic.to_owned(),
                        batch,
                        owed: batch,
                        requests: tx,
                        responses: response.into_inner(),
                    });
                }
                Err(s) if s.code() == tonic::Code::Unauthenticated && !refreshed => {
                    self.refresh(generation).await?;
                    refreshed = true;
                }
                Err(s) => return Err(PubSubError::from_status("Subscribe", &s)),
            }
        }
    }
}

impl Subscription {
    /// The next response: a batch of events (decoded with the schemas they name) or a
    /// keepalive. `None` when the server ended the stream without an error. Coming back for it
    /// is what asks the server for more.
    pub async fn next(&mut self) -> Result<Option<Received>, PubSubError> {
        if self.owed <= self.batch / 2 {
            let more = FetchRequest {
                topic_name: self.topic.clone(),
                num_requested: self.batch - self.owed,
                ..FetchRequest::default()
            };
            // A closed channel means the stream is over; the read below says how.
            if self.requests.send(more).await.is_ok() {
                self.owed = self.batch;
            }
        }
        let response = match self.responses.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(s) => return Err(PubSubError::from_status("Subscribe", &s)),
        };
        self.owed = response.pending_num_requested.clamp(0, self.batch);
        let mut events = Vec::with_capacity(response.events.len());
        for consumer in response.events {
            let Some(event) = consumer.event else {
                continue;
            };
            let schema = self.pubsub.schema(&event.schema_id).await?;
            events.push(schema.decode(&event.payload, consumer.replay_id)?);
        }
        Ok(Some(Received {
            events,
            latest_replay_id: response.latest_replay_id,
        }))
    }
}
