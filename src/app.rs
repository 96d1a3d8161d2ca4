//! Building the roles: the shared [`Components`] (configuration, database, Salesforce client,
//! recon engine, schedules), and the `serve` role on top of them with a bound listener, so
//! tests can ask for port 0 and learn the real port before the server runs.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::repo::Pool;
use axum::Router;
use futures_util::FutureExt;
use tokio::net::TcpListener;

use crate::api;
use crate::config::{Conf, ConfigError};
use crate::connectors::Connectors;
use crate::credentials::{Authenticator, GuardError, GuardSettings};
use crate::http_server::{ConnectionCap, HttpLimits, Server, Transport};
use crate::managed::ManagedObjects;
use crate::mapping::SyncConfig;
use crate::metrics::Metrics;
use crate::ops::{self, Ops};
use crate::outbound::broker::BrokerStatus;
use crate::outbound::sync::{SyncEngine, outbound_mapping};
use crate::outbound::worker::{Worker, WorkerSettings};
use crate::recon::{ReconEngine, ReconSettings};
use crate::repo::salesforce_store::PgTokenStore;
use crate::repo::{self, RepoError, db::DbSettings};
use crate::salesforce::{SalesforceError, TokenStore};
use crate::scheduler::Schedule;
use crate::secrets::Sealer;
use crate::services::AppState;
use crate::tls::{TlsError, TlsSettings};

#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub conf_dir: PathBuf,
    pub listen: String,
    pub database: DbSettings,
    /// The broker status of a relay running in this process, reported by the ping.
    pub broker: Option<BrokerStatus>,
}

/// The listeners `serve` opens: plain HTTP on [`ServeSettings::listen`] unless `http` is false,
/// and HTTPS with the same routes when `tls` is set; both under `limits`, with one connection
/// cap for the two.
#[derive(Debug, Clone)]
pub struct Listeners {
    pub http: bool,
    pub tls: Option<TlsSettings>,
    pub limits: HttpLimits,
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            http: true,
            tls: None,
            limits: HttpLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot reach or prepare the database")]
    Database(#[from] RepoError),
    #[error("the Salesforce connector cannot be set up")]
    Salesforce(#[from] SalesforceError),
    #[error("reconciliation settings: {0}")]
    Recon(#[from] crate::recon::SettingsError),
    #[error(
        "the outbound worker needs a connector (conf/provisioner.openicf-<name>.json) and a sync.json mapping from managed/user to it"
    )]
    NoSalesforce,
    #[error(transparent)]
    Sync(#[from] crate::outbound::sync::SyncError),
    #[error("cannot set up HTTPS")]
    Tls(#[from] TlsError),
    #[error("secrets key")]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error("credential guarding")]
    Credentials(#[from] GuardError),
    #[error("--no-http leaves no listener: give --tls-listen too")]
    NoListener,
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// What every role that speaks to Salesforce stores through: the pool, the secrets key's sealer
/// and the token store over them.
pub struct Storage {
    pub pool: Pool,
    pub sealer: Sealer,
    pub store: TokenStore,
}

/// The role's secrets key, its database (migrated) and the token store, once the key is known
/// to open what is stored.
pub async fn open_storage(database: &DbSettings) -> Result<Storage, StartError> {
    let sealer = crate::secrets::load(&database.secrets)?;
    let pool = open_database(database).await?;
    let store = open_token_store(&pool, &sealer).await?;
    Ok(Storage {
        pool,
        sealer,
        store,
    })
}

/// Connects to the role's database (creating it if missing) and applies the migrations: the
/// first step of every role.
pub async fn open_database(database: &DbSettings) -> Result<Pool, StartError> {
    let pool = repo::db::connect(database).await?;
    repo::db::migrate(&pool).await?;
    Ok(pool)
}

/// The Salesforce token store over `pool`, once this role's key is known to open what is
/// stored (secrets stored in plain text by earlier versions are sealed on the way).
pub async fn open_token_store(pool: &Pool, sealer: &Sealer) -> Result<TokenStore, StartError> {
    let store = PgTokenStore::new(pool.clone(), sealer.clone());
    let sealed = store.prepare().await?;
    if sealed > 0 {
        tracing::info!(
            sealed,
            "sealed the Salesforce secrets an earlier version stored in plain text"
        );
    }
    Ok(store.handle())
}

pub struct Application {
    parts: Components,
    auth: Arc<Authenticator>,
    http: Option<Server>,
    https: Option<Server>,
    router: Router,
    /// The HTTP listener's address, or the HTTPS one's without HTTP.
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
}

/// What every role builds from `conf/` and the database: the pieces the API, the scheduler
/// and the worker share.
#[derive(Clone)]
pub struct Components {
    pub pool: Pool,
    pub conf: Arc<Conf>,
    pub managed: ManagedObjects,
    /// The Salesforce refresh token and saved credentials, sealed under the secrets key.
    pub store: TokenStore,
    /// The secrets key's sealer, and the keys derived from it (paging cookies, the admin
    /// credential's fingerprint).
    pub sealer: Sealer,
    /// The Salesforce connectors, one per provisioner file.
    pub connectors: Connectors,
    pub recon: Option<ReconEngine>,
    pub schedules: Arc<Vec<Schedule>>,
}

impl Components {
    /// The outbound workers of `all` (one per outbound mapping), over these components' pool,
    /// configuration and connectors.
    pub fn outbound_workers(
        &self,
        settings: WorkerSettings,
        status: BrokerStatus,
    ) -> Result<Vec<Worker>, StartError> {
        workers_over(
            &self.conf,
            self.pool.clone(),
            &self.connectors,
            settings,
            status,
        )
    }

    /// Loads `conf_dir`, connects (creating the database if missing), applies migrations, and
    /// builds the Salesforce client and the recon engine when they are configured.
    /// Salesforce calls and recon runs are counted in the process's metrics registry.
    pub async fn build(conf_dir: &Path, database: &DbSettings) -> Result<Components, StartError> {
        Self::build_with_metrics(conf_dir, database, &Metrics::process()).await
    }

    /// As [`Components::build`], counting into `metrics`.
    pub async fn build_with_metrics(
        conf_dir: &Path,
        database: &DbSettings,
        metrics: &Metrics,
    ) -> Result<Components, StartError> {
        let conf = Conf::load(conf_dir)?;
        let Storage {
            pool,
            sealer,
            store,
        } = open_storage(database).await?;
        let connectors = Connectors::build(&conf, &store, metrics)?;
        let schedules =
            crate::scheduler::config::load_all(conf_dir, &|name| std::env::var(name).ok())?;
        let managed = ManagedObjects::new(pool.clone(), Arc::new(conf.managed.clone()));
        let recon = build_recon(&conf, &managed, &connectors)
            .await?
            .map(|engine| {
                engine
                    .with_metrics(metrics.clone())
                    .with_audit(conf.audit.clone())
            });
        Ok(Components {
            pool,
            conf: Arc::new(conf),
            managed,
            store,
            sealer,
            connectors,
            recon,
            schedules: Arc::new(schedules),
        })
    }
}

impl Application {
    /// With the process's metrics registry and no readiness checks beyond the database.
    pub async fn build(settings: &ServeSettings) -> Result<Application, StartError> {
        Self::build_full(settings, &Listeners::default(), Ops::process()).await
    }

    /// Serving `ops` (metrics registry and readiness checks) on `/metrics` and
    /// `/openidm/health/ready`.
    pub async fn build_with_ops(
        settings: &ServeSettings,
        ops: Ops,
    ) -> Result<Application, StartError> {
        Self::build_full(settings, &Listeners::default(), ops).await
    }

    /// As [`Application::build`], with HTTPS and/or without plain HTTP.
    pub async fn build_with(
        settings: &ServeSettings,
        listeners: &Listeners,
    ) -> Result<Application, StartError> {
        Self::build_full(settings, listeners, Ops::process()).await
    }

    /// The listeners and the operations endpoints chosen.
    pub async fn build_full(
        settings: &ServeSettings,
        listeners: &Listeners,
        ops: Ops,
    ) -> Result<Application, StartError> {
        if !listeners.http && listeners.tls.is_none() {
            return Err(StartError::NoListener);
        }
        // Certificates first: a bad path fails before anything connects.
        let tls_config = match &listeners.tls {
            Some(tls) => Some((tls, crate::tls::server_config(&tls.cert)?)),
            None => None,
        };
        let parts =
            Components::build_with_metrics(&settings.conf_dir, &settings.database, &ops.metrics)
                .await?;
        if parts.conf.auth.uses_default_password() {
            tracing::warn!(
                "the admin account uses the default password, accepted only from loopback clients: set IDM_ADMIN_PASSWORD or conf/authentication.json to use the API and the Admin UI from other addresses"
            );
        }
        let auth = Authenticator::new(
            parts.conf.auth.clone(),
            GuardSettings::from_env(),
            &parts.sealer,
        )?;
        let state = AppState {
            managed: parts.managed.clone(),
            auth: auth.clone(),
            broker: settings.broker.clone(),
            conf: parts.conf.clone(),
            connectors: parts.connectors.clone(),
            schedules: parts.schedules.clone(),
            recon: parts.recon.clone(),
            cookies: crate::services::paging_cookie::PagingCookies::new(&parts.sealer),
            sealer: parts.sealer.clone(),
            access_catalogs: Default::default(),
        };
        // One cap for both listeners: the bound is on the process's connections.
        let cap = ConnectionCap::new(listeners.limits.max_connections, "HTTP and HTTPS");
        let (http, http_addr) = match listeners.http {
            true => {
                let tcp = bind(&settings.listen).await?;
                let local = bound_addr(&tcp, &settings.listen)?;
                let server =
                    Server::new(tcp, Transport::Plain, listeners.limits.clone(), cap.clone());
                (Some(server), Some(local))
            }
            false => (None, None),
        };
        let (https, tls_addr) = match tls_config {
            Some((tls, config)) => {
                let tcp = bind(&tls.listen).await?;
                let local = bound_addr(&tcp, &tls.listen)?;
                let transport = Transport::tls(config, tls.handshake_timeout, tls.hsts_max_age);
                let server = Server::new(tcp, transport, listeners.limits.clone(), cap);
                (Some(server), Some(local))
            }
            None => (None, None),
        };
        let local_addr = match http_addr.or(tls_addr) {
            Some(addr) => addr,
            None => return Err(StartError::NoListener),
        };
        let parts_pool = parts.pool.clone();
        let metrics = ops.metrics.clone();
        Ok(Application {
            parts,
            auth,
            http,
            https,
            // The operations endpoints need no IDM credentials: merged beside the API's routes.
            router: ops::http_metrics::counted(
                api::router(state).merge(ops::router(ops, parts_pool)),
                metrics,
            ),
            local_addr,
            tls_addr,
        })
    }

    /// The routes, for tests that call them without a listener (`tower::ServiceExt::oneshot`,
    /// with a `ConnectInfo<ClientAddr>` of their choosing).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The credential guard the REST API and the Admin UI share (tests read its counts).
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    /// The reconciliation engine, when configured.
    pub fn recon(&self) -> Option<&ReconEngine> {
        self.parts.recon.as_ref()
    }

    /// What the application was built from, for roles that run beside it in one process.
    pub fn components(&self) -> &Components {
        &self.parts
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The pool the API writes through (a relay in the same process shares it).
    pub fn pool(&self) -> &Pool {
        &self.parts.pool
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The HTTPS listener's address, when there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Serves on every listener until `shutdown` completes, then lets in-flight requests finish
    /// (idle connections are closed at once).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let shutdown = shutdown.shared();
        let http = async {
            let Some(server) = self.http else {
                return;
            };
            tracing::info!(addr = %self.local_addr, "serving the REST API under /openidm (HTTP)");
            server.serve(self.router.clone(), shutdown.clone()).await;
        };
        let https = async {
            let Some(server) = self.https else {
                return;
            };
            if let Some(addr) = self.tls_addr {
                tracing::info!(%addr, "serving the REST API under /openidm (HTTPS)");
            }
            let router = self
                .router
                .clone()
                .layer(axum::Extension(crate::tls::OverTls));
            server.serve(router, shutdown.clone()).await;
        };
        tokio::join!(http, https);
        Ok(())
    }
}

async fn bind(addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: addr.to_owned(),
            source,
        })
}

fn bound_addr(listener: &TcpListener, addr: &str) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Listen {
        addr: addr.to_owned(),
        source,
    })
}

/// The outbound workers of the `worker` role: `conf/`'s sync.json, connectors and audit.json
/// over `pool`, the connectors keeping their tokens in `store`.
pub fn outbound_workers(
    conf_dir: &Path,
    pool: Pool,
    store: TokenStore,
    settings: WorkerSettings,
    status: BrokerStatus,
) -> Result<Vec<Worker>, StartError> {
    let conf = Conf::load(conf_dir)?;
    let connectors = Connectors::build(&conf, &store, &Metrics::process())?;
    workers_over(&conf, pool, &connectors, settings, status)
}

/// One worker per outbound mapping (from `managed/user` to a connector's system), each on the
/// broker lane of its mapping, so one org's pause never holds back another's changes.
fn workers_over(
    conf: &Conf,
    pool: Pool,
    connectors: &Connectors,
    settings: WorkerSettings,
    status: BrokerStatus,
) -> Result<Vec<Worker>, StartError> {
    let sync = Arc::new(load_sync(conf)?);
    let mut workers = Vec::new();
    for client in connectors.iter() {
        let mapping = match outbound_mapping(&sync, client.system_name()) {
            Ok(m) => m.name.clone(),
            // A connector only read from (inbound mappings) needs no worker.
            Err(crate::outbound::sync::SyncError::NoOutboundMapping(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let revoke = conf
            .system(client.system_name())
            .is_some_and(|s| s.remove_access_on_deactivation);
        let engine = SyncEngine::new(pool.clone(), sync.clone(), &mapping, client.clone())?
            .with_audit(conf.audit.clone())
            .with_access_removed_on_deactivation(revoke);
        workers.push(Worker::new(
            engine,
            pool.clone(),
            Metrics::process(),
            settings.clone(),
            status.clone(),
        ));
    }
    if workers.is_empty() {
        return Err(StartError::NoSalesforce);
    }
    Ok(workers)
}

/// `conf/sync.json`, its mappings checked against the rest of `conf` (every resource they name
/// is defined).
fn load_sync(conf: &Conf) -> Result<SyncConfig, StartError> {
    let sync = SyncConfig::load(&conf.dir)?;
    crate::config::systems::check_mappings(conf, &sync)?;
    Ok(sync)
}

/// The recon engine, when `conf/` has `sync.json` and a Salesforce connector. Runs left ACTIVE
/// by a process that died are marked FAILED now rather than at their first read.
pub async fn build_recon(
    conf: &Conf,
    managed: &ManagedObjects,
    connectors: &Connectors,
) -> Result<Option<ReconEngine>, StartError> {
    if connectors.is_empty() || !conf.dir.join("sync.json").exists() {
        return Ok(None);
    }
    let sync = load_sync(conf)?;
    let settings = ReconSettings::from_env()?;
    let engine = ReconEngine::new(
        managed.clone(),
        Arc::new(sync),
        connectors.clone(),
        settings,
    );
    match engine.reap_dead().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(runs = n, "marked reconciliations of dead processes FAILED"),
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot check for dead reconciliations")
        }
    }
    Ok(Some(engine))
}
