//! The `idm-sync` binary: parse the command line, build the role, run it until a signal.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use idm_sync::app::{Application, ServeSettings};
use idm_sync::repo::db::{self, DbSettings};
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
    /// Serve the REST API (/openidm/...) over HTTP.
    Serve(ServeArgs),
    /// Create the database if missing and apply the migrations, then exit.
    Migrate(DbArgs),
}

#[derive(Args)]
struct DbArgs {
    /// PostgreSQL connection URL; the database is created if it does not exist.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/idm"
    )]
    database_url: String,
    /// Maximum connections in the pool.
    #[arg(long, env = "IDM_DB_MAX_CONNECTIONS", default_value_t = 32)]
    db_max_connections: u32,
}

#[derive(Args)]
struct ServeArgs {
    /// Configuration directory (managed.json, authentication.json, ...).
    #[arg(long = "conf", env = "IDM_CONF_DIR", default_value = "./conf")]
    conf_dir: PathBuf,
    /// Address to listen on for HTTP.
    #[arg(long, env = "IDM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// RabbitMQ URL, for the outbox relay and the workers.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp_url: String,
    #[command(flatten)]
    db: DbArgs,
}

impl DbArgs {
    fn settings(&self) -> DbSettings {
        DbSettings {
            max_connections: self.db_max_connections,
            ..DbSettings::new(&self.database_url)
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Serve(args) => {
            tracing::debug!(amqp_url = %redact_url(&args.amqp_url), "broker configured");
            let settings = ServeSettings {
                conf_dir: args.conf_dir,
                listen: args.listen,
                database: args.db.settings(),
            };
            let app = Application::build(&settings)
                .await
                .context("idm-sync serve could not start")?;
            app.run_until(idm_sync::shutdown::signal())
                .await
                .context("the HTTP server failed")?;
            tracing::info!("stopped");
        }
        Command::Migrate(args) => {
            let pool = db::connect(&args.settings())
                .await
                .context("cannot reach the database")?;
            db::migrate(&pool).await.context("migrations failed")?;
            tracing::info!("migrations applied");
        }
    }
    Ok(())
}

/// A URL with its password replaced, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
