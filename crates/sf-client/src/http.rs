//! The HTTP transport shared by the OAuth and REST calls of one client: one `reqwest` pool, a
//! semaphore of `maximumConnections` permits held for the whole of each call (send and body), a
//! connect timeout and an overall timeout on every request.

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::sync::Semaphore;

use crate::config::ClientConfig;
use crate::errors::SalesforceError;
use crate::observer::Observer;

#[derive(Debug)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    permits: Semaphore,
    /// Told of every request's operation and outcome.
    pub observer: Observer,
}

/// A whole answer, read while the permit was held.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Http {
    pub fn new(cfg: &ClientConfig, observer: Observer) -> Result<Http, SalesforceError> {
        let connections = cfg.maximum_connections.max(1);
        crate::use_ring_for_tls();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            // Idle connections kept per host: no more than may be in use at once.
            .pool_max_idle_per_host(connections)
            // Salesforce never redirects API or token calls; refusing redirects keeps a bearer
            // token or client secret from being replayed to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("idm-sync/", env!("CARGO_PKG_VERSION")));
        if let Some(proxy) = &cfg.proxy {
            let proxy = reqwest::Proxy::all(proxy)
                .map_err(|e| SalesforceError::InvalidArgument(format!("proxy {proxy}: {e}")))?;
            builder = builder.proxy(proxy);
        }
        let client = builder
            .build()
            .map_err(|e| SalesforceError::InvalidArgument(format!("HTTP client: {e}")))?;
        Ok(Http {
            client,
            permits: Semaphore::new(connections),
            observer,
        })
    }

    /// Sends a request and reads the whole body, holding one connection permit throughout.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<RawResponse, SalesforceError> {
        // The semaphore is never closed, so acquiring only fails if it were; treat that as a bug
        // surfaced as an error rather than a panic.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SalesforceError::InvalidArgument("connection pool closed".into()))?;
        let resp = req.send().await.map_err(SalesforceError::from_reqwest)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(SalesforceError::from_reqwest)?;
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// The `oauth2` crate's HTTP hook. A 5xx answer of the token endpoint becomes a transport-level
    /// error here, so that it keeps its status and is retried; 4xx answers go back to `oauth2`,
    /// which parses the OAuth error (`invalid_grant`, …).
    pub async fn oauth(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, SalesforceError> {
        let (parts, body) = request.into_parts();
        let req = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body);
        let raw = self.send(req).await?;
        if raw.status.is_server_error() {
            return Err(SalesforceError::from_response(
                raw.status.as_u16(),
                &raw.body,
                None,
            ));
        }
        let mut response = oauth2::HttpResponse::new(raw.body.to_vec());
        *response.status_mut() = raw.status;
        *response.headers_mut() = raw.headers;
        Ok(response)
    }
}
