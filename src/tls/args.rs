//! The HTTPS flags `serve`, `all` and `demo` share.

use std::path::PathBuf;

use clap::Args;

use super::{CertSource, TlsSettings};

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
        Some(TlsSettings { listen, cert })
    }
}
