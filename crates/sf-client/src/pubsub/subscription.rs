//! A `Subscribe` stream with flow control: the subscriber asks for at most `batch` events (≤ 100,
//! the API's limit) and asks for more only when it comes back for the next batch, that is, once
//! it has applied the previous one. A slow subscriber thus holds events in Salesforce's event
//! bus, never in memory.

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
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
    /// A response read and not yet handed out (its schemas being fetched): kept across a
    /// canceled [`Subscription::next`], so that nothing read is lost.
    pending: Option<FetchResponse>,
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
            let mut request = tonic::Request::new(requests(rx));
            *request.metadata_mut() = md;
            match open_stream(self.channel.clone(), request).await {
                Ok(response) => {
                    return Ok(Subscription {
                        pubsub: self.clone(),
                        topic: topic.to_owned(),
                        batch,
                        owed: batch,
                        requests: tx,
                        responses: response.into_inner(),
                        pending: None,
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

/// `Subscribe`, called through tonic's `Grpc` with concrete types rather than the generated
/// method: the generated one's future cannot be proven `Send` where a role spawns it (a
/// compiler limitation with its `impl` argument), and a role's task must be `Send`.
async fn open_stream(
    channel: tonic::transport::Channel,
    request: tonic::Request<BoxStream<'static, FetchRequest>>,
) -> Result<tonic::Response<tonic::Streaming<FetchResponse>>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("the connection is not ready: {e}")))?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/eventbus.v1.PubSub/Subscribe");
    grpc.streaming(request, path, tonic_prost::ProstCodec::default())
        .await
}

/// The stream of requests a subscription sends: what the receiver is given, in order.
fn requests(rx: mpsc::Receiver<FetchRequest>) -> BoxStream<'static, FetchRequest> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
        .boxed()
}

impl Subscription {
    /// The next response: a batch of events (decoded with the schemas they name) or a
    /// keepalive. `None` when the server ended the stream without an error. Coming back for it
    /// is what asks the server for more. Cancel-safe: a call dropped while it waits (a
    /// timeout, a shutdown) loses nothing; the next call picks up where it stood.
    pub async fn next(&mut self) -> Result<Option<Received>, PubSubError> {
        if self.pending.is_none() {
            self.top_up();
            let response = match self.responses.message().await {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(None),
                Err(s) => return Err(PubSubError::from_status("Subscribe", &s)),
            };
            self.owed = response.pending_num_requested.clamp(0, self.batch);
            self.pending = Some(response);
        }
        let mut events = Vec::new();
        if let Some(response) = &self.pending {
            let produced: Vec<_> = response
                .events
                .iter()
                .filter_map(|c| Some((c.event.as_ref()?, &c.replay_id)))
                .collect();
            // A response's events almost always share one schema: one look-up and one reader
            // per run of them.
            for run in produced.chunk_by(|(a, _), (b, _)| a.schema_id == b.schema_id) {
                let Some((first, _)) = run.first() else {
                    continue;
                };
                let schema = self.pubsub.schema(&first.schema_id).await?;
                let payloads = run
                    .iter()
                    .map(|(e, r)| (e.payload.as_slice(), (*r).clone()));
                events.extend(schema.decode_all(payloads)?);
            }
        }
        let latest_replay_id = self
            .pending
            .take()
            .map(|r| r.latest_replay_id)
            .unwrap_or_default();
        Ok(Some(Received {
            events,
            latest_replay_id,
        }))
    }

    /// Asks for more once half of what was asked for has come. Never waits: a request
    /// already queued is enough.
    fn top_up(&mut self) {
        if self.owed > self.batch / 2 {
            return;
        }
        let more = FetchRequest {
            topic_name: self.topic.clone(),
            num_requested: self.batch - self.owed,
            ..FetchRequest::default()
        };
        if self.requests.try_send(more).is_ok() {
            self.owed = self.batch;
        }
    }
}

#[cfg(test)]
mod send_check {
    use super::*;

    fn is_send<T: Send>(_: T) {}

    #[allow(dead_code)]
    fn futures_are_send(p: PubSub, mut s: Subscription) {
        is_send(p.subscribe("t", Replay::Latest, 1));
        is_send(p.identity());
        is_send(p.schema("x"));
        is_send(p.topic("x"));
        is_send(s.next());
    }
}
