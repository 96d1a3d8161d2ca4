//! What the throttle counts failures against: the client's address, IPv6 grouped by /64 (one
//! host usually holds a whole /64, so counting single IPv6 addresses would count nothing).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::extract::ConnectInfo;
use axum::http::Extensions;

use crate::api::client_addr::ClientAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Net(u64),
    /// No peer address known (a router served without `ConnectInfo`): all such clients share one count.
    Unknown,
}

impl ClientKey {
    pub fn of(client: Option<&ClientAddr>) -> ClientKey {
        match client.map(|c| c.0.ip()) {
            None => ClientKey::Unknown,
            Some(IpAddr::V4(v4)) => ClientKey::V4(v4),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4),
                None => ClientKey::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::V4(v4) => write!(f, "{v4}"),
            ClientKey::V6Net(net) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*net) << 64)),
            ClientKey::Unknown => f.write_str("unknown"),
        }
    }
}

/// The peer address a listener put in the request's extensions, if any.
pub fn client_of(extensions: &Extensions) -> Option<ClientAddr> {
    extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(Some(&ClientAddr(s.parse().unwrap())))
    }

    #[test]
    fn ipv6_is_grouped_by_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:2:ffff::9]:2"));
        assert_ne!(key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:3::1]:1"));
        assert_eq!(key("[::ffff:10.0.0.1]:1"), key("10.0.0.1:9"));
        assert_ne!(key("10.0.0.1:1"), key("10.0.0.2:1"));
        assert_eq!(key("[2001:db8:1:2::1]:1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("10.0.0.1:1").to_string(), "10.0.0.1");
        assert_eq!(ClientKey::of(None).to_string(), "unknown");
        assert_eq!(client_of(&Extensions::new()), None);
        let mut ext = Extensions::new();
        ext.insert(ConnectInfo(ClientAddr("10.0.0.1:5".parse().unwrap())));
        assert_eq!(
            client_of(&ext),
            Some(ClientAddr("10.0.0.1:5".parse().unwrap()))
        );
    }
}
