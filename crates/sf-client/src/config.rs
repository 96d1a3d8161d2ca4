//! The client's typed configuration. `crate::config::provisioner` builds it from IDM's
//! `provisioner.openicf-salesforce.json`; tests and benchmarks build it directly.

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use sha2::{Digest, Sha256};

/// A secret string (client secret, refresh or access token). Its `Debug` and `Display` never show
/// the value, so a secret cannot reach a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256 of the value: lets the token store tell whether the configured refresh token
    /// changed without keeping a second copy of it.
    pub fn sha256_hex(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Retries of transient failures: jittered exponential backoff, bounded both in attempts and in
/// the total time spent sleeping between them.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// First delay; each further delay doubles, up to `max_delay`, with jitter.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Upper bound on the sum of the delays: past it the last error is returned.
    pub max_total_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_total_delay: Duration::from_secs(30),
        }
    }
}

/// Everything the client needs to reach one org. `Debug` masks the secrets and a password in
/// the proxy URL.
#[derive(Clone)]
pub struct ClientConfig {
    /// The system's name in IDM (`salesforce`): the token store's key.
    pub system_name: String,
    /// The OAuth token endpoint (IDM's `loginUrl`), e.g. `https://login.salesforce.com/services/oauth2/token`.
    pub login_url: Url,
    /// The connected app's consumer key.
    pub client_id: String,
    pub client_secret: Secret,
    /// The refresh token from the configuration; a rotated one in the token store may supersede it.
    pub refresh_token: Option<Secret>,
    /// Fallback instance URL, used only when the token answer carries no `instance_url`.
    pub instance_url: Option<Url>,
    /// The authorize endpoint a browser opens, when it reaches the org by another address
    /// than the service does (a container network); derived from `login_url` otherwise.
    pub authorize_url: Option<Url>,
    /// REST API version, e.g. `62.0`.
    pub api_version: String,
    pub connect_timeout: Duration,
    /// Overall timeout of each HTTP request (connect, send, and read the whole body).
    pub request_timeout: Duration,
    /// Concurrent requests at most, and idle pooled connections at most.
    pub maximum_connections: usize,
    /// HTTP proxy for every call, e.g. `http://proxy.example:3128`.
    pub proxy: Option<String>,
    /// `Sforce-Query-Options: batchSize=N` (Salesforce accepts 200..=2000).
    pub query_batch_size: u32,
    pub retry: RetryConfig,
    /// The provisioner file's `enabled`; a state saved from the Admin UI overrides it (see
    /// `SalesforceClient::enabled`).
    pub enabled_in_file: bool,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("system_name", &self.system_name)
            .field("login_url", &self.login_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("refresh_token", &self.refresh_token)
            .field("instance_url", &self.instance_url.as_ref().map(Url::as_str))
            .field("api_version", &self.api_version)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("maximum_connections", &self.maximum_connections)
            .field(
                "proxy",
                &self.proxy.as_deref().map(idm_core::redact::RedactedUrl),
            )
            .field("query_batch_size", &self.query_batch_size)
            .field("retry", &self.retry)
            .field("enabled_in_file", &self.enabled_in_file)
            .finish()
    }
}

impl ClientConfig {
    /// A configuration with IDM's defaults around the four values that identify an org.
    pub fn new(
        login_url: Url,
        client_id: impl Into<String>,
        client_secret: Secret,
        refresh_token: Option<Secret>,
    ) -> ClientConfig {
        ClientConfig {
            system_name: "salesforce".to_owned(),
            login_url,
            client_id: client_id.into(),
            client_secret,
            refresh_token,
            instance_url: None,
            authorize_url: None,
            api_version: "62.0".to_owned(),
            connect_timeout: Duration::from_millis(120_000),
            request_timeout: Duration::from_secs(120),
            maximum_connections: 10,
            proxy: None,
            query_batch_size: 2000,
            retry: RetryConfig::default(),
            enabled_in_file: true,
        }
    }

    /// `/services/data/vNN.N/`, the prefix of every REST resource.
    pub fn data_path(&self) -> String {
        format!("/services/data/v{}/", self.api_version)
    }
}

/// Connector credentials saved at run time (the Admin UI; kept by the token store), which
/// override the provisioner file's three values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The token endpoint, e.g. `https://login.salesforce.com/services/oauth2/token`.
    pub login_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
}

impl Credentials {
    /// `cfg` with these credentials in place of its own.
    pub fn apply(&self, cfg: &ClientConfig) -> ClientConfig {
        let mut out = cfg.clone();
        // The file's browser-facing address belongs to the file's org.
        if self.login_url != cfg.login_url {
            out.authorize_url = None;
        }
        out.login_url = self.login_url.clone();
        out.client_id = self.client_id.clone();
        out.client_secret = self.client_secret.clone();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_or_display() {
        let cfg = ClientConfig::new(
            Url::parse("https://login.salesforce.com/services/oauth2/token").unwrap(),
            "key",
            Secret::new("the-client-secret"),
            Some(Secret::new("the-refresh-token")),
        );
        let cfg = ClientConfig {
            proxy: Some("http://proxyuser:the-proxy-password@proxy:3128".into()),
            ..cfg
        };
        let shown = format!("{cfg:?} {}", cfg.client_secret);
        assert!(!shown.contains("the-proxy-password"), "{shown}");
        assert!(shown.contains("proxyuser:***@proxy"), "{shown}");
        assert!(!shown.contains("the-client-secret"), "{shown}");
        assert!(!shown.contains("the-refresh-token"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert_eq!(cfg.data_path(), "/services/data/v62.0/");
    }

    #[test]
    fn hash_is_stable_hex() {
        let h = Secret::new("abc").sha256_hex();
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
