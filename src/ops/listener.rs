//! The operations listener of the roles without an HTTP server (`worker`, `relay`,
//! `scheduler`): the operations endpoints alone on a listener of their own, under the same
//! server limits as the API's listeners. On by default, each role on a port of its own so that
//! one host can run them side by side; `--metrics-listen ADDR` moves it, `off` turns it off.

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

/// Where a role serves its operations endpoints when `--metrics-listen` is not given.
pub fn default_addr(role: &str) -> Option<&'static str> {
    match role {
        "relay" => Some("127.0.0.1:9101"),
        "worker" => Some("127.0.0.1:9102"),
        "scheduler" => Some("127.0.0.1:9103"),
        "events" => Some("127.0.0.1:9104"),
        _ => None,
    }
}

/// What `--metrics-listen` asks of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenChoice {
    Off,
    /// Given by the operator: not being able to bind it stops start-up.
    Given(String),
    /// The role's default: a second replica on the same host finds it taken and goes on
    /// without, saying so.
    Default(&'static str),
}

impl ListenChoice {
    pub fn resolve(role: &str, flag: Option<&str>) -> ListenChoice {
        match flag.map(str::trim) {
            Some(off) if off.eq_ignore_ascii_case("off") => ListenChoice::Off,
            Some(addr) if !addr.is_empty() => ListenChoice::Given(addr.to_owned()),
            _ => default_addr(role).map_or(ListenChoice::Off, ListenChoice::Default),
        }
    }

    /// Binds the chosen address; `Ok(None)` when off, or when the default could not be bound.
    pub async fn bind(&self, role: &str) -> Result<Option<OpsListener>, ListenError> {
        match self {
            ListenChoice::Off => Ok(None),
            ListenChoice::Given(addr) => OpsListener::bind(addr).await.map(Some),
            ListenChoice::Default(addr) => match OpsListener::bind(addr).await {
                Ok(listener) => Ok(Some(listener)),
                Err(e) => {
                    tracing::warn!(
                        role,
                        addr,
                        error = %e.source,
                        "not serving /metrics and readiness: the role's default address is taken (another {role} on this host?); set --metrics-listen ADDR, or off"
                    );
                    Ok(None)
                }
            },
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_has_a_port_of_its_own_and_the_flag_overrides_it() {
        let defaults: Vec<_> = ["relay", "worker", "scheduler"]
            .iter()
            .map(|r| ListenChoice::resolve(r, None))
            .collect();
        assert_eq!(
            defaults,
            [
                ListenChoice::Default("127.0.0.1:9101"),
                ListenChoice::Default("127.0.0.1:9102"),
                ListenChoice::Default("127.0.0.1:9103"),
            ]
        );
        assert_eq!(
            ListenChoice::resolve("worker", Some("OFF")),
            ListenChoice::Off
        );
        assert_eq!(
            ListenChoice::resolve("worker", Some("0.0.0.0:9100")),
            ListenChoice::Given("0.0.0.0:9100".into())
        );
        assert_eq!(
            ListenChoice::resolve("worker", Some("")),
            ListenChoice::Default("127.0.0.1:9102")
        );
    }

    #[tokio::test]
    async fn a_taken_default_is_skipped_and_a_taken_given_address_is_an_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let leaked: &'static str = Box::leak(addr.clone().into_boxed_str());
        assert!(
            ListenChoice::Default(leaked)
                .bind("worker")
                .await
                .unwrap()
                .is_none()
        );
        assert!(ListenChoice::Given(addr).bind("worker").await.is_err());
        assert!(ListenChoice::Off.bind("worker").await.unwrap().is_none());
    }
}
