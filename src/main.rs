//! The `idm-sync` binary: parse the command line, build the role, run it until a signal.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::time::Duration;

use idm_sync::app::{self, Application, Components, Listeners, ServeSettings};
use idm_sync::authorize_cli;
use idm_sync::events;
use idm_sync::http_server::HttpLimitsArgs;
use idm_sync::ops::{self, Ops, listener::ListenChoice};
use idm_sync::outbound::broker::{BrokerSettings, BrokerStatus};
use idm_sync::outbound::relay::{DEFAULT_CONFIRM_TIMEOUT, Relay, RelaySettings};
use idm_sync::outbound::topology::{Topology, lanes_in};
use idm_sync::outbound::worker::{Worker, WorkerSettings};
use idm_sync::recon_cli::{self, ReconCommand};
use idm_sync::repo;
use idm_sync::repo::db::{self, DbSettings};
use idm_sync::salesforce::TokenStore;
use idm_sync::scheduler::Scheduler;
use idm_sync::secrets::KeySource;
use idm_sync::shutdown::Shutdown;
use idm_sync::supervise::Supervisor;
use idm_sync::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "idm-sync",
    version,
    about = "Keeps managed users in PostgreSQL and Salesforce users in sync"
)]
struct Cli {
    /// Log output format.
    #[arg(
        long,
        global = true,
        env = "IDM_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (/openidm/...) over HTTP, with the outbox relay unless --no-relay.
    Serve(ServeArgs),
    /// Publish committed changes from the outbox to the message broker.
    Relay(RelayArgs),
    /// Fire conf/schedule-*.json (reconciliations), once per firing across replicas.
    Scheduler(SchedulerArgs),
    /// Create the database if missing and apply the migrations, then exit.
    Migrate(DbArgs),
    /// Run one reconciliation of a mapping in this process and print its summary.
    Recon(ReconArgs),
    /// Apply managed-user changes to Salesforce (consumes the change events).
    Worker(WorkerArgs),
    /// Apply Salesforce change events (conf/changeevents-<connector>.json) to managed users.
    Events(EventsArgs),
    /// Every role in one process: serve (with the outbox relay), the worker, the scheduler and
    /// the change event subscribers.
    All(ServeArgs),
    /// The walk-through: a Salesforce emulator with N users and every role in one process, a
    /// reconciliation, an edit and a create shown step by step; then serves until Ctrl-C.
    Demo(idm_sync::demo::DemoArgs),
    /// Salesforce connector tools.
    #[command(subcommand)]
    Salesforce(SalesforceCommand),
}

#[derive(Args)]
struct ReconArgs {
    /// The mapping to reconcile (by default, sync.json's mapping from Salesforce users to
    /// managed users).
    #[arg(long)]
    mapping: Option<String>,
    /// Assess and report only; change nothing.
    #[arg(long)]
    analyze: bool,
    /// Let the run delete more than IDM_RECON_MAX_DELETE_SHARE of the managed users.
    #[arg(long)]
    allow_mass_change: bool,
    /// Print the run's whole summary as JSON (for scripts) instead of a few lines.
    #[arg(long)]
    json: bool,
    /// Configuration directory (sync.json, managed.json, the Salesforce provisioner).
    #[arg(long = "conf", env = "IDM_CONF_DIR", default_value = "./conf")]
    conf_dir: PathBuf,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Subcommand)]
enum SalesforceCommand {
    /// Authorize idm-sync for an org (OAuth web-server flow): prints a URL to open, then stores
    /// the refresh token and instance URL in the database.
    Authorize(AuthorizeArgs),
}

#[derive(Args)]
struct AuthorizeArgs {
    /// Configuration directory (provisioner.openicf-<name>.json).
    #[arg(long = "conf", env = "IDM_CONF_DIR", default_value = "./conf")]
    conf_dir: PathBuf,
    /// The connector to authorize (the <name> of its provisioner file); needed when there are
    /// several.
    #[arg(long)]
    system: Option<String>,
    /// Local port of the callback, http://localhost:<port>/callback (list it in the connected app).
    #[arg(long, default_value_t = 8765)]
    callback_port: u16,
    /// Seconds to wait for the browser's redirect.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
struct DbArgs {
    /// PostgreSQL connection URL; the database is created if it does not exist.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/idm"
    )]
    database_url: String,
    /// Maximum connections in the pool.
    #[arg(long, env = "IDM_DB_MAX_CONNECTIONS", default_value_t = 32)]
    db_max_connections: u32,
    /// The key sealing the Salesforce secrets stored in the database: the base64 of 32 bytes
    /// (`openssl rand -base64 32`). Every role sharing the database needs the same one; give it
    /// through the environment rather than the command line. Without it, --secrets-key-file.
    #[arg(long, env = "IDM_SECRETS_KEY", hide_env_values = true)]
    secrets_key: Option<String>,
    /// A file holding that key, created with a new key on first start when missing.
    #[arg(long, env = "IDM_SECRETS_KEY_FILE", default_value = idm_sync::secrets::DEFAULT_KEY_FILE)]
    secrets_key_file: PathBuf,
    /// Seconds a database statement of this role may run before Postgres cancels it (0: no
    /// limit). Default: 30 for serve, all, worker and relay; 300 for scheduler and recon.
    /// Migrations run without it.
    #[arg(long, env = "IDM_DB_STATEMENT_TIMEOUT_SECS")]
    db_statement_timeout_secs: Option<u64>,
    /// Seconds a session of this role may sit idle inside a transaction before Postgres ends
    /// it, releasing its locks (0: no limit).
    #[arg(long, env = "IDM_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECS", default_value_t = db::IDLE_IN_TRANSACTION_TIMEOUT.as_secs())]
    db_idle_in_transaction_timeout_secs: u64,
}

/// Days audit rows are kept.
const DEFAULT_AUDIT_RETENTION_DAYS: u64 = 30;

/// Seconds a worker's lease lasts without a heartbeat.
const DEFAULT_WORKER_LEASE_SECS: u64 = 6;

#[derive(Args)]
struct BrokerArgs {
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp_url: String,
    /// Prefix of the exchange and queue names (several deployments can share a broker).
    #[arg(long, env = "IDM_BROKER_PREFIX", default_value = "idm-sync")]
    broker_prefix: String,
    /// Number of partition queues; every role of a deployment must use the same number.
    #[arg(long, env = "IDM_PARTITIONS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    partitions: u16,
    /// Outbox rows claimed and published per transaction.
    #[arg(long, env = "IDM_RELAY_BATCH", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    relay_batch: i64,
    /// Seconds the relay waits for the broker to confirm a batch (its rows stay locked
    /// meanwhile); then the batch is rolled back, retried after reconnecting. Keep it below
    /// --db-idle-in-transaction-timeout-secs.
    #[arg(long, env = "IDM_RELAY_CONFIRM_TIMEOUT_SECS", default_value_t = DEFAULT_CONFIRM_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    relay_confirm_timeout_secs: u64,
    /// Hours a published outbox row is kept before it is purged.
    #[arg(long, env = "IDM_OUTBOX_RETENTION_HOURS", default_value_t = 168)]
    outbox_retention_hours: u64,
    /// Seconds without a heartbeat after which a worker's partitions go to the others.
    #[arg(long, env = "IDM_WORKER_LEASE_SECS", default_value_t = DEFAULT_WORKER_LEASE_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    worker_lease_secs: u64,
}

#[derive(Args)]
struct ServeArgs {
    /// Configuration directory (managed.json, authentication.json, ...).
    #[arg(long = "conf", env = "IDM_CONF_DIR", default_value = "./conf")]
    conf_dir: PathBuf,
    /// Address to listen on for HTTP.
    #[arg(long, env = "IDM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Do not run the outbox relay in this process (run `idm-sync relay` instead).
    #[arg(long, env = "IDM_NO_RELAY")]
    no_relay: bool,
    /// Days recon and sync audit rows are kept before this process purges them (0 keeps them).
    #[arg(long, env = "IDM_AUDIT_RETENTION_DAYS", default_value_t = DEFAULT_AUDIT_RETENTION_DAYS)]
    audit_retention_days: u64,
    #[command(flatten)]
    tls: idm_sync::tls::TlsArgs,
    #[command(flatten)]
    http: HttpLimitsArgs,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
struct SchedulerArgs {
    /// Configuration directory (schedule-*.json, sync.json, the Salesforce provisioner).
    #[arg(long = "conf", env = "IDM_CONF_DIR", default_value = "./conf")]
    conf_dir: PathBuf,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    ops: OpsArgs,
}

#[derive(Args)]
struct EventsArgs {
    /// Configuration directory (changeevents-*.json, sync.json, the Salesforce provisioners).
    #[arg(long = "conf", env = "IDM_CONF_DIR", default_value = "./conf")]
    conf_dir: PathBuf,
    /// Seconds a subscriber holds a connector's subscription without renewing it; a standby
    /// replica takes over after that.
    #[arg(long, env = "IDM_EVENTS_LEASE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=3600))]
    events_lease_secs: u64,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    ops: OpsArgs,
}

#[derive(Args)]
struct OpsArgs {
    /// Serve /metrics and /openidm/health/ready on this address (no credentials needed);
    /// `off` serves none. Default: 127.0.0.1:9101 (relay), :9102 (worker), :9103 (scheduler),
    /// :9104 (events).
    #[arg(long, env = "IDM_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    http: HttpLimitsArgs,
}

#[derive(Args)]
struct WorkerArgs {
    /// Configuration directory (sync.json, the Salesforce provisioner).
    #[arg(long = "conf", env = "IDM_CONF_DIR", default_value = "./conf")]
    conf_dir: PathBuf,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    ops: OpsArgs,
}

#[derive(Args)]
struct RelayArgs {
    /// Configuration directory (sync.json: every outbound mapping's lane is published to).
    #[arg(long = "conf", env = "IDM_CONF_DIR", default_value = "./conf")]
    conf_dir: PathBuf,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    ops: OpsArgs,
}

impl DbArgs {
    /// For the roles with short statements (serve, all, worker, relay).
    fn settings(&self) -> DbSettings {
        self.settings_with(db::SHORT_STATEMENT_TIMEOUT)
    }

    /// For the roles that run reconciliations (scheduler, recon).
    fn recon_settings(&self) -> DbSettings {
        self.settings_with(db::RECON_STATEMENT_TIMEOUT)
    }

    fn settings_with(&self, statement_timeout: Duration) -> DbSettings {
        let limit = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        DbSettings {
            max_connections: self.db_max_connections,
            secrets: KeySource::from_args(self.secrets_key.clone(), self.secrets_key_file.clone()),
            statement_timeout: self
                .db_statement_timeout_secs
                .map_or(Some(statement_timeout), limit),
            idle_in_transaction_timeout: limit(self.db_idle_in_transaction_timeout_secs),
            ..DbSettings::new(&self.database_url)
        }
    }

    /// The database (migrated) and the token store over it, sealing under this role's secrets
    /// key once the key is known to open what is stored.
    async fn open(&self) -> anyhow::Result<(repo::Pool, TokenStore)> {
        let storage = app::open_storage(&self.settings())
            .await
            .context("cannot open the database and the stored Salesforce secrets")?;
        Ok((storage.pool, storage.store))
    }
}

impl OpsArgs {
    /// Binds the operations listener of `role` (a bad `--metrics-listen` stops start-up) and
    /// serves the operations endpoints there, a task of `tasks`.
    async fn spawn(
        &self,
        role: &str,
        ops: Ops,
        pool: repo::Pool,
        tasks: &mut Supervisor,
    ) -> anyhow::Result<()> {
        let choice = ListenChoice::resolve(role, self.metrics_listen.as_deref());
        let Some(listener) = choice.bind(role).await? else {
            return Ok(());
        };
        let metrics = ops.metrics.clone();
        let router = ops::http_metrics::counted(ops::router(ops, pool), metrics);
        tasks.spawn_infallible(
            "the /metrics listener",
            listener
                .with_limits(self.http.limits())
                .serve(router, tasks.shutdown().wait()),
        );
        Ok(())
    }
}

impl BrokerArgs {
    /// The relay's settings, declaring a lane for each outbound mapping of `conf_dir`'s sync.json.
    fn relay_settings(&self, role: &str, conf_dir: &Path) -> anyhow::Result<RelaySettings> {
        let lanes = lanes_in(conf_dir).context("cannot read the outbound mappings' lanes")?;
        Ok(RelaySettings {
            broker: BrokerSettings {
                url: self.amqp_url.clone(),
                topology: Topology::new(&self.broker_prefix, self.partitions).with_lanes(lanes),
                connection_name: format!("idm-sync {role} on {}", hostname()),
            },
            batch_size: self.relay_batch,
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(self.outbox_retention_hours.saturating_mul(3600)),
            confirm_timeout: Duration::from_secs(self.relay_confirm_timeout_secs),
        })
    }

    fn worker_settings(&self, conf_dir: &Path) -> anyhow::Result<WorkerSettings> {
        Ok(WorkerSettings {
            lease_ttl: Duration::from_secs(self.worker_lease_secs),
            ..WorkerSettings::new(self.relay_settings("worker", conf_dir)?.broker)
        })
    }
}

impl ServeArgs {
    /// `all`'s arguments for the demo's plan.
    fn for_demo(plan: idm_sync::demo::RolesPlan) -> ServeArgs {
        ServeArgs {
            conf_dir: plan.conf_dir,
            listen: plan.listen,
            no_relay: false,
            audit_retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
            tls: plan.tls,
            http: plan.http,
            broker: BrokerArgs {
                amqp_url: plan.amqp_url,
                broker_prefix: plan.broker_prefix,
                partitions: plan.partitions,
                relay_batch: plan.relay_batch,
                relay_confirm_timeout_secs: DEFAULT_CONFIRM_TIMEOUT.as_secs(),
                outbox_retention_hours: plan.outbox_retention_hours,
                worker_lease_secs: DEFAULT_WORKER_LEASE_SECS,
            },
            db: DbArgs {
                database_url: plan.database_url,
                db_max_connections: plan.db_max_connections,
                secrets_key: None,
                secrets_key_file: plan.secrets_key_file,
                db_statement_timeout_secs: None,
                db_idle_in_transaction_timeout_secs: db::IDLE_IN_TRANSACTION_TIMEOUT.as_secs(),
            },
        }
    }
}

/// `serve`, and with `all` the worker and the scheduler beside it, until shutdown.
async fn serve(args: ServeArgs, shutdown: Shutdown, all: bool) -> anyhow::Result<()> {
    let status = BrokerStatus::default();
    let ops = Ops::process();
    if !args.no_relay {
        ops.readiness.broker("relay", status.clone());
    }
    let settings = ServeSettings {
        conf_dir: args.conf_dir.clone(),
        listen: args.listen,
        database: args.db.settings(),
        broker: (!args.no_relay).then(|| status.clone()),
    };
    let listeners = Listeners {
        http: !args.tls.no_http,
        tls: args.tls.settings(),
        limits: args.http.limits(),
    };
    let app = Application::build_full(&settings, &listeners, ops.clone())
        .await
        .context("idm-sync serve could not start")?;
    let mut tasks = Supervisor::new(shutdown);
    if !args.no_relay {
        let relay = Relay::new(
            app.pool().clone(),
            args.broker.relay_settings("serve", &args.conf_dir)?,
            status,
        );
        tasks.spawn_infallible("the outbox relay", relay.run_until(tasks.shutdown().wait()));
    }
    if all {
        let settings = events::SubscriberSettings::default();
        spawn_subscribers(subscribers_for(app.components(), &settings)?, &mut tasks);
        let scheduler = scheduler_for(app.components());
        tasks.spawn_infallible(
            "the scheduler",
            scheduler.run_until(tasks.shutdown().wait()),
        );
    }
    // Retention 0 keeps every audit row: no purge task at all.
    if args.audit_retention_days > 0 {
        tasks.spawn_infallible(
            "the audit purge",
            idm_sync::repo::audit_retention::run(
                app.pool().clone(),
                Duration::from_secs(args.audit_retention_days.saturating_mul(86_400)),
                Duration::from_secs(3600),
                tasks.shutdown().wait(),
            ),
        );
    }
    if all {
        let settings = args.broker.worker_settings(&args.conf_dir)?;
        let worker_status = BrokerStatus::default();
        ops.readiness.broker("worker", worker_status.clone());
        let workers = app
            .components()
            .outbound_workers(settings, worker_status)
            .context("the outbound worker could not start")?;
        spawn_workers(workers, &ops, &mut tasks);
    }
    tasks.spawn("the HTTP server", app.run_until(tasks.shutdown().wait()));
    tasks.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

/// One task per outbound worker (one per outbound mapping), each reporting its pause.
fn spawn_workers(workers: Vec<Worker>, ops: &Ops, tasks: &mut Supervisor) {
    for worker in workers {
        ops.readiness
            .worker_pause(worker.system_name(), worker.pause_state());
        tracing::info!(system = worker.system_name(), "outbound worker starting");
        tasks.spawn_infallible(
            "an outbound worker",
            worker.run_until(tasks.shutdown().wait()),
        );
    }
}

/// The change event subscribers of the connectors that enable them.
fn subscribers_for(
    parts: &Components,
    settings: &events::SubscriberSettings,
) -> anyhow::Result<Vec<events::Subscriber>> {
    let Some(engine) = &parts.recon else {
        return Ok(Vec::new());
    };
    let holder = format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        uuid::Uuid::new_v4()
    );
    events::subscribers(
        &parts.conf,
        engine,
        &parts.pool,
        &holder,
        &idm_sync::metrics::Metrics::process(),
        settings,
    )
    .context("the change event subscribers could not start")
}

fn spawn_subscribers(subscribers: Vec<events::Subscriber>, tasks: &mut Supervisor) {
    for subscriber in subscribers {
        tracing::info!(
            system = subscriber.connector(),
            "change event subscriber starting"
        );
        tasks.spawn_infallible(
            "a change event subscriber",
            subscriber.run_until(tasks.shutdown().wait()),
        );
    }
}

fn scheduler_for(parts: &Components) -> Scheduler {
    Scheduler::new(
        parts.pool.clone(),
        parts.schedules.as_ref().clone(),
        idm_sync::scheduler::jobs::runner(parts.recon.clone()),
        hostname(),
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    idm_sync::salesforce::use_ring_for_tls();
    let cli = Cli::parse();
    let default_log = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    telemetry::init_with_default(cli.log_format, default_log);
    let (trigger, shutdown) = idm_sync::shutdown::channel();
    tokio::spawn(async move {
        idm_sync::shutdown::signal().await;
        trigger.trigger();
    });
    match cli.command {
        Command::Scheduler(args) => {
            let parts = Components::build(&args.conf_dir, &args.db.recon_settings())
                .await
                .context("idm-sync scheduler could not start")?;
            let mut tasks = Supervisor::new(shutdown);
            args.ops
                .spawn("scheduler", Ops::process(), parts.pool.clone(), &mut tasks)
                .await?;
            let scheduler = scheduler_for(&parts);
            tasks.spawn_infallible(
                "the scheduler",
                scheduler.run_until(tasks.shutdown().wait()),
            );
            tasks.wait().await?;
        }
        Command::Events(args) => {
            let parts = Components::build(&args.conf_dir, &args.db.recon_settings())
                .await
                .context("idm-sync events could not start")?;
            let mut tasks = Supervisor::new(shutdown);
            args.ops
                .spawn("events", Ops::process(), parts.pool.clone(), &mut tasks)
                .await?;
            let settings = events::SubscriberSettings {
                lease_ttl: Duration::from_secs(args.events_lease_secs),
                ..events::SubscriberSettings::default()
            };
            let subscribers = subscribers_for(&parts, &settings)?;
            if subscribers.is_empty() {
                tracing::warn!(
                    "no conf/changeevents-<connector>.json enables change events: nothing to subscribe to"
                );
            }
            spawn_subscribers(subscribers, &mut tasks);
            tasks.wait().await?;
        }
        Command::Worker(args) => {
            let (pool, store) = args.db.open().await?;
            let settings = args.broker.worker_settings(&args.conf_dir)?;
            let status = BrokerStatus::default();
            let workers = idm_sync::app::outbound_workers(
                &args.conf_dir,
                pool.clone(),
                store,
                settings,
                status.clone(),
            )
            .context("idm-sync worker could not start")?;
            let ops = Ops::process();
            ops.readiness.broker("worker", status);
            let mut tasks = Supervisor::new(shutdown);
            spawn_workers(workers, &ops, &mut tasks);
            args.ops.spawn("worker", ops, pool, &mut tasks).await?;
            tasks.wait().await?;
        }
        Command::Serve(args) => serve(args, shutdown, false).await?,
        Command::All(args) => serve(args, shutdown, true).await?,
        Command::Demo(args) => {
            idm_sync::demo::run(args, shutdown, |plan, shutdown| {
                serve(ServeArgs::for_demo(plan), shutdown, true)
            })
            .await?
        }
        Command::Relay(args) => {
            let pool = app::open_database(&args.db.settings())
                .await
                .context("cannot reach or prepare the database")?;
            let settings = args.broker.relay_settings("relay", &args.conf_dir)?;
            tracing::info!(broker = ?settings.broker, "outbox relay starting");
            let status = BrokerStatus::default();
            let ops = Ops::process();
            ops.readiness.broker("relay", status.clone());
            let mut tasks = Supervisor::new(shutdown);
            args.ops
                .spawn("relay", ops, pool.clone(), &mut tasks)
                .await?;
            let relay = Relay::new(pool, settings, status);
            tasks.spawn_infallible("the outbox relay", relay.run_until(tasks.shutdown().wait()));
            tasks.wait().await?;
        }
        Command::Recon(args) => {
            let cmd = ReconCommand {
                conf_dir: args.conf_dir,
                database: args.db.recon_settings(),
                mapping: args.mapping,
                analyze: args.analyze,
                allow_mass_change: args.allow_mass_change,
            };
            let summary = recon_cli::run(&cmd, shutdown.wait())
                .await
                .context("idm-sync recon failed")?;
            match args.json {
                true => println!("{}", serde_json::to_string_pretty(&summary)?),
                false => print!("{}", recon_cli::describe(&summary)),
            }
            if summary["state"] != "SUCCESS" {
                anyhow::bail!(
                    "reconciliation {}: {}",
                    summary["state"].as_str().unwrap_or("?"),
                    summary["stageDescription"].as_str().unwrap_or("")
                );
            }
        }
        Command::Migrate(args) => {
            app::open_database(&args.settings())
                .await
                .context("cannot reach or prepare the database")?;
            tracing::info!("migrations applied");
        }
        Command::Salesforce(SalesforceCommand::Authorize(args)) => {
            let conf = idm_sync::config::Conf::load(&args.conf_dir)?;
            let system = match &args.system {
                Some(name) => conf.system(name).cloned().with_context(|| {
                    format!(
                        "no conf/provisioner.openicf-{name}.json in the configuration directory"
                    )
                })?,
                None => match conf.systems.as_slice() {
                    [one] => one.clone(),
                    [] => anyhow::bail!(
                        "no conf/provisioner.openicf-<name>.json in the configuration directory"
                    ),
                    several => anyhow::bail!(
                        "several connectors are configured ({}): name one with --system",
                        several
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            };
            let (_pool, store) = args.db.open().await?;
            authorize_cli::run(
                system.client,
                store,
                args.callback_port,
                Duration::from_secs(args.timeout_secs),
            )
            .await
            .context("Salesforce authorization failed")?;
        }
    }
    Ok(())
}
