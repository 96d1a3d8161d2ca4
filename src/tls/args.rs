//! The HTTPS flags `serve`, `all` and `demo` share.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{CertSource, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HSTS_MAX_AGE, TlsSettings};

#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// Address of an HTTPS listener serving the same API (off unless given).
    #[arg(long, env = "IDM_TLS_LISTEN")]
    pub tls_listen: Option<String>,
    /// PEM certificate chain for HTTPS (leaf first); without it a self-signed certificate is
    /// generated under --data-dir on first start and reused.
    #[arg(long, env = "IDM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "IDM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Directory for generated state (the self-signed certificate: <dir>/tls/).
    #[arg(long, env = "IDM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Do not open the plain HTTP listener (--tls-listen must be given).
    #[arg(long, env = "IDM_NO_HTTP")]
    pub no_http: bool,
    /// Seconds a client has to complete the TLS handshake.
    #[arg(long, env = "IDM_TLS_HANDSHAKE_TIMEOUT_SECS", default_value_t = DEFAULT_HANDSHAKE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub tls_handshake_timeout_secs: u64,
    /// max-age of the Strict-Transport-Security header on every HTTPS response (0 tells
    /// browsers to forget an earlier one).
    #[arg(long, env = "IDM_TLS_HSTS_MAX_AGE_SECS", default_value_t = DEFAULT_HSTS_MAX_AGE.as_secs())]
    pub tls_hsts_max_age_secs: u64,
}

impl TlsArgs {
    /// The HTTPS listener, if one was asked for.
    pub fn settings(&self) -> Option<TlsSettings> {
        let listen = self.tls_listen.clone()?;
        let cert = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => CertSource::SelfSigned {
                data_dir: self.data_dir.clone(),
            },
        };
        Some(TlsSettings {
            listen,
            cert,
            handshake_timeout: Duration::from_secs(self.tls_handshake_timeout_secs),
            hsts_max_age: Duration::from_secs(self.tls_hsts_max_age_secs),
        })
    }
}
