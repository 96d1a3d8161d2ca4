//! One accepted connection: the TLS handshake when there is one, then hyper's HTTP/1 state
//! machine over a service that gives handlers the peer address and bounds the request body.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::body_deadline::{DeadlineBody, Expired};
use super::send_stall::SendStall;
use super::transport::Transport;
use crate::api::client_addr::ClientAddr;
use crate::api::error::ApiError;

/// What the accept loop hands each connection's task.
pub(super) struct Accepted {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    /// Its slot under the connection cap, freed when the task ends.
    pub permit: OwnedSemaphorePermit,
}

/// What every connection of a listener shares.
#[derive(Clone)]
pub(super) struct Shared {
    pub transport: Transport,
    pub http: Arc<http1::Builder>,
    pub router: Router,
    pub body_read_timeout: Duration,
    pub send_timeout: Duration,
}

/// Serves one connection until the client leaves, a limit cuts it off, or shutdown closes it
/// (`watcher`: at once when idle, after the current response otherwise; `stopping`: a
/// handshake in progress is dropped).
pub(super) async fn run(
    accepted: Accepted,
    shared: Shared,
    watcher: Watcher,
    mut stopping: watch::Receiver<bool>,
) {
    let Accepted { tcp, peer, permit } = accepted;
    let _slot = permit;
    // Small answers go out at once, not behind the peer's delayed ACK.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let client = ClientAddr(peer);
    // Under TLS too, so a client that stops reading mid-handshake is also let go.
    let tcp = SendStall::new(tcp, shared.send_timeout);
    let result = match &shared.transport {
        Transport::Plain => {
            let service = PeerService::new(&shared, client, None);
            let conn = shared.http.serve_connection(TokioIo::new(tcp), service);
            watcher.watch(conn).await
        }
        Transport::Tls(tls) => {
            let handshake = tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(tcp));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                _ = stopping.wait_for(|stop| *stop) => return,
            };
            let service = PeerService::new(&shared, client, Some(tls.hsts.clone()));
            let conn = shared.http.serve_connection(TokioIo::new(stream), service);
            watcher.watch(conn).await
        }
    };
    if let Err(e) = result {
        // Timeouts and clients that vanish are routine: a log line each would let any
        // client flood the log.
        tracing::debug!(%peer, error = %e, timeout = e.is_timeout(), "connection closed on an error");
    }
}

/// The router, seen from one connection.
struct PeerService {
    router: TowerToHyperService<Router>,
    client: ClientAddr,
    body_read_timeout: Duration,
    hsts: Option<HeaderValue>,
}

impl PeerService {
    fn new(shared: &Shared, client: ClientAddr, hsts: Option<HeaderValue>) -> PeerService {
        PeerService {
            router: TowerToHyperService::new(shared.router.clone()),
            client,
            body_read_timeout: shared.body_read_timeout,
            hsts,
        }
    }
}

impl Service<Request<Incoming>> for PeerService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        // What `into_make_service_with_connect_info` would insert: handlers keep extracting
        // `ConnectInfo<ClientAddr>` (credential throttle, loopback-only default password).
        parts.extensions.insert(ConnectInfo(self.client));
        let expired = Expired::default();
        let body = DeadlineBody::new(body, self.body_read_timeout, expired.clone());
        let answer = self.router.call(Request::from_parts(parts, body));
        let limit = self.body_read_timeout;
        let hsts = self.hsts.clone();
        Box::pin(async move {
            let mut response = match answer.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if expired.is_set() {
                // The handler saw a read error; the client learns which limit it hit.
                response = body_timed_out(limit);
            }
            if let Some(hsts) = hsts {
                response
                    .headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, hsts);
            }
            Ok(response)
        })
    }
}

fn body_timed_out(limit: Duration) -> Response {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!("The request body did not arrive within the body read timeout ({limit:?})"),
    )
    .into_response();
    // The rest of the body may still come: the connection cannot carry another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
