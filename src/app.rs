//! Building the `serve` role: configuration, database, routes, and a bound listener, so tests
//! can ask for port 0 and learn the real port before the server runs.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::serve::ListenerExt;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::api::{self, AppState, auth::Authenticator};
use crate::config::{Conf, ConfigError};
use crate::managed::ManagedObjects;
use crate::outbound::broker::BrokerStatus;
use crate::repo::{self, RepoError, db::DbSettings};
use crate::salesforce::{SalesforceClient, SalesforceError, TokenStore};

#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub conf_dir: PathBuf,
    pub listen: String,
    pub database: DbSettings,
    /// The broker status of a relay running in this process, reported by the ping.
    pub broker: Option<BrokerStatus>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot reach or prepare the database")]
    Database(#[from] RepoError),
    #[error("the Salesforce connector cannot be set up")]
    Salesforce(#[from] SalesforceError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Application {
    pool: PgPool,
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
}

impl Application {
    pub async fn build(settings: &ServeSettings) -> Result<Application, StartError> {
        let conf = Conf::load(&settings.conf_dir)?;
        if conf.auth.uses_default_password() {
            tracing::warn!(
                "the admin account uses the default password: set IDM_ADMIN_PASSWORD or conf/authentication.json before exposing this server"
            );
        }
        let pool = repo::db::connect(&settings.database).await?;
        repo::db::migrate(&pool).await?;
        let salesforce = match &conf.salesforce {
            Some(system) => Some(SalesforceClient::new(
                system.client.clone(),
                TokenStore::postgres(pool.clone()),
            )?),
            None => None,
        };
        let schedules = crate::scheduler::config::load_all(&settings.conf_dir, &|name| {
            std::env::var(name).ok()
        })?;
        let state = AppState {
            managed: ManagedObjects::new(pool, Arc::new(conf.managed.clone())),
            auth: Authenticator::new(conf.auth.clone()),
            broker: settings.broker.clone(),
            conf: Arc::new(conf),
            salesforce,
            schedules: Arc::new(schedules),
        };
        let listener = TcpListener::bind(&settings.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: settings.listen.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: settings.listen.clone(),
            source,
        })?;
        Ok(Application {
            pool: state.managed.pool().clone(),
            listener,
            router: api::router(state),
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The pool the API writes through (a relay in the same process shares it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr, "serving the REST API under /openidm");
        // No Nagle delay: small JSON answers go out at once, not after the peer's delayed ACK.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
