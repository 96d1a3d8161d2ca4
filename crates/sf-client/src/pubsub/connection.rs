//! [`PubSub`]: one org's Pub/Sub API, over one HTTP/2 connection (TLS for `https://`), with the
//! connector's session. Every call carries the documented authentication metadata: the access
//! token, the instance URL and the org id (`tenantid`); a call refused as unauthenticated is
//! repeated once with a refreshed session.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::errors::PubSubError;
use super::event::EventSchema;
use super::proto::pub_sub_client::PubSubClient;
use super::proto::{SchemaRequest, TopicInfo, TopicRequest};
use crate::client::{Identity, SalesforceClient};

/// Salesforce's Pub/Sub API endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.pubsub.salesforce.com:7443";

/// How long a unary call (topic, schema) may take.
const UNARY_TIMEOUT: Duration = Duration::from_secs(30);

/// Cheap to clone: the connection, the identity and the schema cache are shared.
#[derive(Debug, Clone)]
pub struct PubSub {
    pub(crate) sf: SalesforceClient,
    pub(crate) channel: Channel,
    identity: Arc<tokio::sync::OnceCell<Identity>>,
    schemas: Arc<Mutex<HashMap<String, Arc<EventSchema>>>>,
}

impl PubSub {
    /// Connects lazily (the first call opens the connection, and it reconnects by itself).
    pub fn new(sf: SalesforceClient, url: &str) -> Result<PubSub, PubSubError> {
        let bad = |reason: String| PubSubError::Endpoint {
            url: url.to_owned(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(Duration::from_secs(10))
            // A connection the network dropped silently is noticed within a minute and a half.
            .http2_keep_alive_interval(Duration::from_secs(60))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("https") => {
                crate::use_ring_for_tls();
                let tls = ClientTlsConfig::new().with_native_roots();
                endpoint = endpoint.tls_config(tls).map_err(|e| bad(e.to_string()))?;
            }
            Some("http") => {}
            _ => {
                return Err(bad(
                    "the URL must start with https:// (or http:// for a local emulator)".into(),
                ));
            }
        }
        Ok(PubSub {
            sf,
            channel: endpoint.connect_lazy(),
            identity: Arc::default(),
            schemas: Arc::default(),
        })
    }

    /// The org and the integration user of the connector's session, read once.
    pub async fn identity(&self) -> Result<Identity, PubSubError> {
        if let Some(id) = self.identity.get() {
            return Ok(id.clone());
        }
        let id = self.sf.identity().await?;
        // Two first calls may both read it: the same answer either way.
        let _ = self.identity.set(id.clone());
        Ok(id)
    }

    /// `GetTopic`.
    pub async fn topic(&self, name: &str) -> Result<TopicInfo, PubSubError> {
        let request = TopicRequest {
            topic_name: name.to_owned(),
        };
        self.unary("GetTopic", request, |mut c, r| async move {
            c.get_topic(r).await
        })
        .await
    }

    /// `GetSchema`, parsed; cached by id for the life of this handle (a schema id names one
    /// schema forever).
    pub async fn schema(&self, id: &str) -> Result<Arc<EventSchema>, PubSubError> {
        if let Some(s) = self.cached(id) {
            return Ok(s);
        }
        let request = SchemaRequest {
            schema_id: id.to_owned(),
        };
        let info = self
            .unary("GetSchema", request, |mut c, r| async move {
                c.get_schema(r).await
            })
            .await?;
        let schema = Arc::new(EventSchema::parse(id, &info.schema_json)?);
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), schema.clone());
        Ok(schema)
    }

    fn cached(&self, id: &str) -> Option<Arc<EventSchema>> {
        let schemas = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        schemas.get(id).cloned()
    }

    pub(crate) fn client(&self) -> PubSubClient<Channel> {
        PubSubClient::new(self.channel.clone())
    }

    /// The authentication metadata of the current session, with the session's generation.
    pub(crate) async fn auth(&self) -> Result<(MetadataMap, u64), PubSubError> {
        let identity = self.identity().await?;
        let session = self.sf.bearer().await?;
        let mut md = MetadataMap::new();
        let value = |s: &str, what: &str| {
            MetadataValue::try_from(s).map_err(|_| PubSubError::Endpoint {
                url: session.instance_url.to_string(),
                reason: format!("the {what} cannot be sent as gRPC metadata"),
            })
        };
        md.insert(
            "accesstoken",
            value(session.access_token.expose(), "access token")?,
        );
        md.insert(
            "instanceurl",
            value(
                session.instance_url.as_str().trim_end_matches('/'),
                "instance URL",
            )?,
        );
        md.insert("tenantid", value(&identity.org_id, "org id")?);
        Ok((md, session.generation))
    }

    /// After `UNAUTHENTICATED` on the session of `generation`.
    pub(crate) async fn refresh(&self, generation: u64) -> Result<(), PubSubError> {
        self.sf.refresh_session(generation).await?;
        Ok(())
    }

    async fn unary<Req, Res, F, Fut>(
        &self,
        call: &'static str,
        message: Req,
        send: F,
    ) -> Result<Res, PubSubError>
    where
        Req: Clone,
        F: Fn(PubSubClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Res>, tonic::Status>>,
    {
        let mut refreshed = false;
        loop {
            let (md, generation) = self.auth().await?;
            let mut request = tonic::Request::new(message.clone());
            *request.metadata_mut() = md;
            request.set_timeout(UNARY_TIMEOUT);
            match send(self.client(), request).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(s) if s.code() == tonic::Code::Unauthenticated && !refreshed => {
                    tracing::debug!(call, "Pub/Sub API refused the session, refreshing");
                    self.refresh(generation).await?;
                    refreshed = true;
                }
                Err(s) => return Err(PubSubError::from_status(call, &s)),
            }
        }
    }
}
