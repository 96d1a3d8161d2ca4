//! The demo's REST client: what an operator's curl would do, against this process's own API.

use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{method} {path}: {source}")]
    Http {
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {path} answered {status}: {body}")]
    Status {
        method: Method,
        path: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("the REST API did not become ready within {0:?}")]
    NotReady(Duration),
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

#[derive(Clone)]
pub struct Rest {
    client: reqwest::Client,
    /// `http://host:port/openidm`
    base: String,
    username: String,
    password: String,
}

impl Rest {
    pub fn new(base: String, username: String, password: String) -> Result<Rest, ClientError> {
        crate::salesforce::use_ring_for_tls();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(ClientError::Build)?;
        Ok(Rest {
            client,
            base,
            username,
            password,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("X-OpenIDM-Username", &self.username)
            .header("X-OpenIDM-Password", &self.password)
    }

    /// Sends a request and returns its JSON body, or the status and body as an error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut req = self.request(method.clone(), path);
        if let Some(body) = body {
            req = req.json(body);
        }
        let http = |source| ClientError::Http {
            method: method.clone(),
            path: path.to_owned(),
            source,
        };
        let res = req.send().await.map_err(http)?;
        let status = res.status();
        if !status.is_success() {
            let body = res.text().await.unwrap_or_default();
            return Err(ClientError::Status {
                method,
                path: path.to_owned(),
                status,
                body,
            });
        }
        res.json().await.map_err(http)
    }

    /// Waits until `/info/ping` answers `ACTIVE_READY`.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(ping) = self.call(Method::GET, "/info/ping", None).await {
                if ping["state"] == "ACTIVE_READY" {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ClientError::NotReady(within))
    }
}
