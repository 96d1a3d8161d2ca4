//! The gRPC service `eventbus.v1.PubSub` on its own listener: `GetTopic`, `GetSchema`,
//! `Subscribe`. Every call is authenticated from its metadata and counted in the stats (apart
//! from the REST API usage: the Pub/Sub API has allocations of its own).

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{self, Caller};
use super::proto::pub_sub_server::{PubSub, PubSubServer};
use super::proto::{
    FetchRequest, FetchResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};
use super::schema::TOPIC;
use super::status::PubSubError;
use super::subscription;
use crate::{Shared, read};

/// Largest request accepted: Pub/Sub requests are a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Responses a stream may hold for a slow client before it waits.
const STREAM_BUFFER: usize = 4;

struct Service {
    shared: Arc<Shared>,
}

impl Service {
    /// Counts the call, names it with an RPC id, and authenticates it.
    fn begin<T>(&self, method: &'static str, req: &Request<T>) -> (String, Result<Caller, Status>) {
        self.shared.stats.record_pubsub_call(method);
        let rpc_id = self.shared.pubsub.uuid();
        let caller = auth::check(&self.shared, req.metadata()).map_err(|e| e.into_status(&rpc_id));
        (rpc_id, caller)
    }
}

#[tonic::async_trait]
impl PubSub for Service {
    type SubscribeStream = ReceiverStream<Result<FetchResponse, Status>>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let (rpc_id, caller) = self.begin("Subscribe", &request);
        let caller = caller?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(subscription::run(
            self.shared.clone(),
            caller.tenant,
            rpc_id,
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        let (rpc_id, caller) = self.begin("GetSchema", &request);
        caller?;
        let schema = &self.shared.pubsub.schema;
        let id = request.get_ref().schema_id.trim();
        if id.is_empty() {
            return Err(PubSubError::SchemaBlank.into_status(&rpc_id));
        }
        if id != schema.id {
            let id = id.to_owned();
            return Err(PubSubError::SchemaNotFound { id }.into_status(&rpc_id));
        }
        Ok(Response::new(SchemaInfo {
            schema_json: schema.json.clone(),
            schema_id: schema.id.clone(),
            rpc_id,
        }))
    }

    async fn get_topic(
        &self,
        request: Request<TopicRequest>,
    ) -> Result<Response<TopicInfo>, Status> {
        let (rpc_id, caller) = self.begin("GetTopic", &request);
        let caller = caller?;
        let topic = request.get_ref().topic_name.trim();
        if topic.is_empty() {
            return Err(PubSubError::TopicBlank.into_status(&rpc_id));
        }
        if topic != TOPIC {
            let e = PubSubError::TopicNotFound {
                tenant: caller.tenant,
                topic: topic.to_owned(),
            };
            return Err(e.into_status(&rpc_id));
        }
        Ok(Response::new(TopicInfo {
            topic_name: TOPIC.to_owned(),
            tenant_guid: read(&self.shared.org).org_id.clone(),
            can_publish: false,
            can_subscribe: true,
            schema_id: self.shared.pubsub.schema.id.clone(),
            rpc_id,
        }))
    }
}

/// Serves the Pub/Sub API on `listener` (plain HTTP/2) until `shutdown` completes.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service =
        PubSubServer::new(Service { shared }).max_decoding_message_size(MAX_REQUEST_BYTES);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}
