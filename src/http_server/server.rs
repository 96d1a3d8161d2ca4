//! The accept loop of one listener: a slot under the connection cap first, then the next
//! connection, served on a task of its own; on shutdown, stop accepting and let hyper-util's
//! graceful watcher close idle connections and finish the requests in flight.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::cap::ConnectionCap;
use super::connection::{self, Accepted, Shared};
use super::limits::{HttpLimits, MIN_HEADER_BYTES};
use super::transport::Transport;

/// A bound listener, ready to serve a router under [`HttpLimits`].
pub struct Server {
    listener: TcpListener,
    transport: Transport,
    limits: HttpLimits,
    cap: ConnectionCap,
}

impl Server {
    /// `cap` may be shared with other listeners (one bound for all of them).
    pub fn new(
        listener: TcpListener,
        transport: Transport,
        limits: HttpLimits,
        cap: ConnectionCap,
    ) -> Server {
        Server {
            listener,
            transport,
            limits,
            cap,
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` completes, then until the requests in flight are
    /// answered (idle connections are closed at once).
    pub async fn serve(self, router: Router, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            transport,
            limits,
            cap,
        } = self;
        let name = transport.name();
        let shared = Shared {
            transport,
            http: Arc::new(http1_builder(&limits)),
            router,
            body_read_timeout: limits.body_read_timeout,
            send_timeout: limits.send_timeout,
        };
        let graceful = GracefulShutdown::new();
        let (stop, stopping) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                biased;
                () = &mut shutdown => break,
                permit = cap.acquire() => match permit {
                    Some(permit) => permit,
                    None => break,
                },
            };
            let (tcp, peer) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pass, as axum::serve does.
                        tracing::debug!(listener = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let accepted = Accepted { tcp, peer, permit };
            // The watcher is taken here, not in the task, so a shutdown starting meanwhile
            // still waits for this connection.
            let watcher = graceful.watcher();
            tokio::spawn(connection::run(
                accepted,
                shared.clone(),
                watcher,
                stopping.clone(),
            ));
        }
        // New connections are refused from here on.
        drop(listener);
        let _ = stop.send(true);
        tracing::debug!(
            listener = name,
            connections = graceful.count(),
            "draining connections"
        );
        graceful.shutdown().await;
    }
}

fn http1_builder(limits: &HttpLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    builder
}
