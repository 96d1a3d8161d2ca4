//! What a listener speaks under HTTP: plain TCP, or TLS with a handshake time limit and HSTS
//! on every answer.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(Tls),
}

#[derive(Clone)]
pub struct Tls {
    pub(super) acceptor: TlsAcceptor,
    /// A client that has not finished its handshake by then is dropped.
    pub(super) handshake_timeout: Duration,
    /// `Strict-Transport-Security`, on every response.
    pub(super) hsts: HeaderValue,
}

impl Transport {
    /// TLS with `config`. `hsts_max_age` (whole seconds) tells browsers to use HTTPS only for
    /// that long; zero tells them to forget it.
    pub fn tls(
        config: Arc<ServerConfig>,
        handshake_timeout: Duration,
        hsts_max_age: Duration,
    ) -> Transport {
        Transport::Tls(Tls {
            acceptor: TlsAcceptor::from(config),
            handshake_timeout,
            hsts: hsts_value(hsts_max_age),
        })
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Transport::Plain => "HTTP",
            Transport::Tls(_) => "HTTPS",
        }
    }
}

fn hsts_value(max_age: Duration) -> HeaderValue {
    // Digits and ASCII only: the fallback is never taken.
    HeaderValue::try_from(format!("max-age={}", max_age.as_secs()))
        .unwrap_or_else(|_| HeaderValue::from_static("max-age=31536000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_header() {
        assert_eq!(
            hsts_value(Duration::from_secs(31_536_000)),
            "max-age=31536000"
        );
        assert_eq!(hsts_value(Duration::ZERO), "max-age=0");
    }
}
