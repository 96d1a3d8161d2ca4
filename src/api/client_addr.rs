//! The peer address of a connection, as handlers see it (`ConnectInfo<ClientAddr>`): the
//! credential throttle keys on it, and the default admin password works only from loopback.

use std::net::SocketAddr;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl ClientAddr {
    /// 127.0.0.0/8, ::1, and IPv4-mapped loopback.
    pub fn is_loopback(&self) -> bool {
        match self.0.ip() {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        }
    }
}

impl Connected<IncomingStream<'_, crate::tls::TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, NoDelayListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, NoDelayListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// A TCP listener whose connections send small answers at once (no Nagle delay behind the
/// peer's delayed ACK).
pub struct NoDelayListener(pub tokio::net::TcpListener);

impl Listener for NoDelayListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        (stream, addr)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_forms() {
        let addr = |s: &str| ClientAddr(s.parse().unwrap());
        assert!(addr("127.0.0.1:1").is_loopback());
        assert!(addr("127.9.0.1:1").is_loopback());
        assert!(addr("[::1]:1").is_loopback());
        assert!(addr("[::ffff:127.0.0.1]:1").is_loopback());
        assert!(!addr("10.0.0.1:1").is_loopback());
        assert!(!addr("[::ffff:10.0.0.1]:1").is_loopback());
    }
}
