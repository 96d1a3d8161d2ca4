//! HTTPS for `serve`, `all` and `demo`: a second listener that serves the same router over
//! rustls (ring, the provider reqwest and lapin already use). The certificate comes from PEM
//! files, or is generated self-signed on first start and kept under the data directory, as IDM
//! keeps its keystore. The handshake and HSTS are the server's ([`crate::http_server`]).

pub mod args;
pub mod cert;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;

pub use args::TlsArgs;

/// Marks a request that arrived on the HTTPS listener (a request extension), so what depends
/// on the scheme — the Admin UI's `Secure` cookie, its OAuth callback URL — follows it.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// Where the certificate and key come from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files: the certificate chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// `<data_dir>/tls/cert.pem` and `key.pem`, generated self-signed when absent.
    SelfSigned { data_dir: PathBuf },
}

/// The HTTPS listener: its address, certificate, handshake limit and HSTS.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub listen: String,
    pub cert: CertSource,
    /// A client that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// `Strict-Transport-Security: max-age=…` on every HTTPS response.
    pub hsts_max_age: Duration,
}

/// 10 s: a handshake takes a few round trips; a client silent for longer holds a slot for
/// nothing.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// One year, the value HSTS preload lists ask for.
pub const DEFAULT_HSTS_MAX_AGE: Duration = Duration::from_secs(31_536_000);

impl TlsSettings {
    /// With the default handshake limit and HSTS.
    pub fn new(listen: impl Into<String>, cert: CertSource) -> TlsSettings {
        TlsSettings {
            listen: listen.into(),
            cert,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            hsts_max_age: DEFAULT_HSTS_MAX_AGE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("cannot read the TLS private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("cannot write the self-signed certificate to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{present} exists but {missing} does not: restore it, or delete both to generate a new self-signed certificate"
    )]
    HalfPair { present: PathBuf, missing: PathBuf },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the TLS certificate and key do not make a valid server configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A rustls server configuration for `source` (HTTP/1.1, as the plain listener).
pub fn server_config(source: &CertSource) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = match source {
        CertSource::Files { cert, key } => (cert.clone(), key.clone()),
        CertSource::SelfSigned { data_dir } => cert::ensure_self_signed(data_dir)?,
    };
    let (chain, key) = cert::load(&cert_path, &key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
