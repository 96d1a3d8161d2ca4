//! The `idm-sync demo` command line. Its own defaults, not `all`'s: the demo resets its
//! database and uses its own broker prefix, so it can never touch a development `all`'s data.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::http_server::HttpLimitsArgs;
use crate::tls::TlsArgs;

// No `Debug`: the URLs may carry passwords.
#[derive(Clone, Args)]
pub struct DemoArgs {
    /// Address of the HTTP listener (the REST API and the Admin UI).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Users the Salesforce emulator starts with.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Address of the in-process Salesforce emulator (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub emulator_listen: SocketAddr,
    /// The configuration to demonstrate; the demo runs a copy pointed at the emulator.
    #[arg(long = "conf", env = "IDM_CONF_DIR", default_value = "./conf")]
    pub conf_dir: PathBuf,
    /// The demo's PostgreSQL database: dropped and re-created at every start (its name must
    /// contain "demo"). Deliberately not DATABASE_URL, so a shell set up for a real
    /// deployment cannot point the reset at it.
    #[arg(
        long,
        env = "IDM_DEMO_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/idm_demo"
    )]
    pub database_url: String,
    /// Maximum connections in the pool.
    #[arg(long, env = "IDM_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub db_max_connections: u32,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Prefix of the exchange and queue names (not `all`'s, so the two never share queues).
    #[arg(long, default_value = "idm-demo")]
    pub broker_prefix: String,
    /// Number of partition queues.
    #[arg(long, env = "IDM_PARTITIONS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub partitions: u16,
    /// Outbox rows claimed and published per transaction.
    #[arg(long, env = "IDM_RELAY_BATCH", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub relay_batch: i64,
    /// Hours a published outbox row is kept before it is purged.
    #[arg(long, env = "IDM_OUTBOX_RETENTION_HOURS", default_value_t = 168)]
    pub outbox_retention_hours: u64,
    /// HTTPS (--tls-listen …) and the data directory, where the demo also keeps its
    /// generated configuration (<dir>/demo/conf).
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Header, body and idle timeouts and the connection cap of the listeners.
    #[command(flatten)]
    pub http: HttpLimitsArgs,
}
