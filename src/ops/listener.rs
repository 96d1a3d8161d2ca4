//! `--metrics-listen ADDR` for the roles without an HTTP server (`worker`, `relay`,
//! `scheduler`): the operations endpoints alone on a listener of their own, under the same
//! server limits as the API's listeners.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

use crate::http_server::{ConnectionCap, HttpLimits, Server, Transport};

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for /metrics")]
pub struct ListenError {
    addr: String,
    #[source]
    source: std::io::Error,
}

/// A bound listener, so a bad address stops start-up rather than a background task.
pub struct OpsListener {
    listener: TcpListener,
    limits: HttpLimits,
    pub local_addr: SocketAddr,
}

impl OpsListener {
    /// With the default [`HttpLimits`].
    pub async fn bind(addr: &str) -> Result<OpsListener, ListenError> {
        let err = |source| ListenError {
            addr: addr.to_owned(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(err)?;
        let local_addr = listener.local_addr().map_err(err)?;
        Ok(OpsListener {
            listener,
            limits: HttpLimits::default(),
            local_addr,
        })
    }

    pub fn with_limits(self, limits: HttpLimits) -> OpsListener {
        OpsListener { limits, ..self }
    }

    /// Serves `router` until `shutdown` completes.
    pub async fn serve(self, router: Router, shutdown: impl Future<Output = ()> + Send + 'static) {
        tracing::info!(addr = %self.local_addr, "serving /metrics and /openidm/health/ready");
        let cap = ConnectionCap::new(self.limits.max_connections, "metrics");
        Server::new(self.listener, Transport::Plain, self.limits, cap)
            .serve(router, shutdown)
            .await;
    }
}
