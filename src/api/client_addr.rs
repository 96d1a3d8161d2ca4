//! The peer address of a connection, as handlers see it (`ConnectInfo<ClientAddr>`, inserted
//! on every request by [`crate::http_server`]): the credential throttle keys on it, and the
//! default admin password works only from loopback.

use std::net::SocketAddr;

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
