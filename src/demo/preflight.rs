//! Before anything starts: are PostgreSQL and RabbitMQ reachable? The roles would retry
//! forever; the demo stops at once and says which service is missing and how to start it.
//! Then the demo database is reset.

use std::time::Duration;

use crate::outbound::broker::{BrokerConnection, BrokerSettings};
use crate::outbound::topology::Topology;
use crate::repo::RepoError;
use crate::repo::db::{self, DropDatabaseError};
use crate::secrets::redact_url;

const PG_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("the demo database URL is not a valid PostgreSQL URL: {0}")]
    BadDatabaseUrl(String),
    #[error(
        "the demo resets its database at start, so its name must contain \"demo\" (got {0:?}): pass --database-url …/idm_demo"
    )]
    NotADemoDatabase(String),
    #[error(
        "PostgreSQL is not reachable at {host}:{port} ({cause}); start it (scripts/services postgres) or pass --database-url"
    )]
    Postgres {
        host: String,
        port: u16,
        cause: String,
    },
    #[error("cannot reset the demo database {name}: {source}")]
    Reset {
        name: String,
        #[source]
        source: RepoError,
    },
    #[error(
        "RabbitMQ is not reachable at {url} ({cause}); start it (scripts/services rabbitmq) or pass --amqp-url"
    )]
    RabbitMq { url: String, cause: String },
}

/// Drops the demo database (the roles create and migrate it again when they start), so every
/// run starts from the freshly generated emulator org. Returns the database name.
pub async fn reset_database(url: &str) -> Result<String, PreflightError> {
    let at = db::database_at(url).map_err(|e| PreflightError::BadDatabaseUrl(e.to_string()))?;
    if !at.name.contains("demo") {
        return Err(PreflightError::NotADemoDatabase(at.name));
    }
    // FORCE ends a previous run's sessions.
    db::drop_database(url, PG_TIMEOUT)
        .await
        .map_err(|e| match e {
            DropDatabaseError::BadUrl(m) => PreflightError::BadDatabaseUrl(m),
            DropDatabaseError::Unreachable(cause) => PreflightError::Postgres {
                host: at.host.clone(),
                port: at.port,
                cause,
            },
            DropDatabaseError::Drop(source) => PreflightError::Reset {
                name: at.name.clone(),
                source,
            },
        })?;
    Ok(at.name)
}

/// Opens a connection and declares the demo's topology, as the relay and the worker will.
pub async fn check_broker(url: &str, topology: Topology) -> Result<(), PreflightError> {
    let settings = BrokerSettings {
        url: url.to_owned(),
        topology,
        connection_name: "idm-sync demo preflight".to_owned(),
    };
    let connection =
        BrokerConnection::open(&settings)
            .await
            .map_err(|e| PreflightError::RabbitMq {
                url: redact_url(url),
                cause: crate::telemetry::error_chain(&e),
            })?;
    connection.close().await;
    Ok(())
}
