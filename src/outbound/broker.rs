//! The RabbitMQ connection: connect, declare the topology, and report whether the broker is
//! reachable, for the ping and readiness endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::BackoffBuilder;
use lapin::{Channel, Connection, ConnectionProperties};

use super::topology::Topology;
use crate::secrets::redact_url;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reach the message broker")]
    Connect(#[source] lapin::Error),
    #[error("the message broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot declare the broker topology")]
    Topology(#[source] lapin::Error),
    #[error("the broker channel failed")]
    Channel(#[source] lapin::Error),
}

/// Whether this process currently holds a working broker connection. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct BrokerStatus(Arc<AtomicBool>);

impl BrokerStatus {
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The role is stopping: down, without warning that the broker went away.
    pub fn stopped(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    pub fn set(&self, up: bool) {
        let was = self.0.swap(up, Ordering::Relaxed);
        if was != up {
            if up {
                tracing::info!("message broker connected");
            } else {
                tracing::warn!("message broker unreachable: changes wait in the outbox");
            }
        }
    }
}

/// Where and how to reach the broker.
#[derive(Clone)]
pub struct BrokerSettings {
    pub url: String,
    pub topology: Topology,
    /// Name shown in the broker's management UI for this connection.
    pub connection_name: String,
}

impl std::fmt::Debug for BrokerSettings {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerSettings")
            .field("url", &redact_url(&self.url))
            .field("topology", &self.topology)
            .field("connection_name", &self.connection_name)
            .finish()
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with one channel, the topology declared on it.
pub struct BrokerConnection {
    pub connection: Connection,
    pub channel: Channel,
}

impl BrokerConnection {
    pub async fn open(settings: &BrokerSettings) -> Result<BrokerConnection, BrokerError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(settings.connection_name.clone().into());
        let connect = Connection::connect(&settings.url, properties);
        // A black-holed address must not hang the caller for the OS's TCP time-out.
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| BrokerError::Timeout(CONNECT_TIMEOUT))?
            .map_err(BrokerError::Connect)?;
        let channel = connection
            .create_channel()
            .await
            .map_err(BrokerError::Channel)?;
        settings
            .topology
            .declare(&channel)
            .await
            .map_err(BrokerError::Topology)?;
        Ok(BrokerConnection {
            connection,
            channel,
        })
    }

    pub fn is_connected(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    pub async fn close(self) {
        let _ = self.channel.close(200, "bye".into()).await;
        let _ = self.connection.close(200, "bye".into()).await;
    }
}

/// Delays between broker reconnections (and the retries of a role's session): 200 ms
/// doubling to 30 s, jittered, without end.
pub(crate) fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}
