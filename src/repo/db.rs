//! Connecting to Postgres: create the database when it is missing, then apply `migrations/`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use super::RepoError;
use crate::secrets::{DEFAULT_KEY_FILE, KeySource, RedactedUrl};

/// The migrations compiled into the binary. sqlx takes a Postgres advisory lock while it
/// applies them, so replicas that start together apply each migration once.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The `statement_timeout` of roles whose statements are short: the API's, the relay's, the
/// worker's. Recon pages and audit purge batches started in `serve` take seconds, so they fit.
pub const SHORT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The `statement_timeout` of the roles that run reconciliations (scheduler, recon): a page of
/// a large org, the target phase's counts and the planner's ANALYZE get room to spare.
pub const RECON_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a session may sit idle inside a transaction: above the relay's confirm timeout
/// (the relay holds its batch's row locks while it waits for the broker), far above anything
/// else, which never waits inside a transaction.
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Pool settings, and the key of the secrets the database keeps sealed; the defaults suit one
/// `serve` process on a small machine. `Debug` masks the URL's password and the key.
#[derive(Clone)]
pub struct DbSettings {
    pub url: String,
    pub max_connections: u32,
    pub secrets: KeySource,
    /// Postgres cancels any statement of this role running longer (`None`: no limit).
    pub statement_timeout: Option<Duration>,
    /// Postgres ends a session of this role idle in a transaction this long, releasing its
    /// locks (`None`: no limit).
    pub idle_in_transaction_timeout: Option<Duration>,
}

impl std::fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSettings")
            .field("url", &RedactedUrl(&self.url))
            .field("max_connections", &self.max_connections)
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl DbSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 32,
            secrets: KeySource::File(PathBuf::from(DEFAULT_KEY_FILE)),
            statement_timeout: Some(SHORT_STATEMENT_TIMEOUT),
            idle_in_transaction_timeout: Some(IDLE_IN_TRANSACTION_TIMEOUT),
        }
    }
}

/// Whether Postgres answers a trivial statement within `within`: the health checks' probe.
pub async fn answers(pool: &PgPool, within: Duration) -> bool {
    tokio::time::timeout(within, sqlx::query("SELECT 1").execute(pool))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// A limit as Postgres reads it: milliseconds, 0 for none.
fn millis(limit: Option<Duration>) -> u128 {
    limit.map_or(0, |d| d.as_millis())
}

/// Opens a pool on the configured database, creating the database first if it does not exist.
pub async fn connect(settings: &DbSettings) -> Result<PgPool, RepoError> {
    let options = PgConnectOptions::from_str(&settings.url)
        .map_err(|e| RepoError::Config(format!("DATABASE_URL is not a valid Postgres URL: {e}")))?
        // Plan each statement for its actual parameters. A cached generic plan cannot see how
        // long an `= ANY($1)` array is nor how selective a filter's value is, and picked a full
        // index scan per page for recon's link look-ups (quadratic in the org's size).
        .options([("plan_cache_mode", "force_custom_plan")])
        // Set at connection start, so they hold on every connection this role opens: pooled,
        // detached (a recon's lock) and LISTEN alike. idle_session_timeout stays off: a
        // recon's lock connection idles (outside a transaction) for the whole run.
        .options([
            ("statement_timeout", millis(settings.statement_timeout)),
            (
                "idle_in_transaction_session_timeout",
                millis(settings.idle_in_transaction_timeout),
            ),
        ])
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
    ensure_database(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies the pending migrations, on a connection of their own without the role's time
/// limits: a migration may rewrite a large table, and waiting for another replica's migrations
/// (sqlx's advisory lock) counts as statement time. The connection never goes back to the pool.
pub async fn migrate(pool: &PgPool) -> Result<(), RepoError> {
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut conn)
        .await?;
    sqlx::query("SET idle_in_transaction_session_timeout = 0")
        .execute(&mut conn)
        .await?;
    MIGRATOR.run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Where a database URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseAt {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// Reads a Postgres URL's database, host and port.
pub fn database_at(url: &str) -> Result<DatabaseAt, RepoError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| RepoError::Config(format!("not a valid Postgres URL: {e}")))?;
    Ok(DatabaseAt {
        name: options.get_database().unwrap_or("postgres").to_owned(),
        host: options.get_host().to_owned(),
        port: options.get_port(),
    })
}

/// Why [`drop_database`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DropDatabaseError {
    #[error("{0}")]
    BadUrl(String),
    /// The server did not answer, or refused the connection.
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Drop(#[source] RepoError),
}

/// Drops the URL's database through the `postgres` maintenance database, ending its sessions
/// (`WITH (FORCE)`); the connection attempt waits at most `connect_within`.
pub async fn drop_database(url: &str, connect_within: Duration) -> Result<(), DropDatabaseError> {
    let options =
        PgConnectOptions::from_str(url).map_err(|e| DropDatabaseError::BadUrl(e.to_string()))?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let maintenance = options.database("postgres").disable_statement_logging();
    let mut conn = tokio::time::timeout(connect_within, PgConnection::connect_with(&maintenance))
        .await
        .map_err(|_| {
            DropDatabaseError::Unreachable(format!(
                "no answer within {}s",
                connect_within.as_secs()
            ))
        })?
        .map_err(|e| DropDatabaseError::Unreachable(e.to_string()))?;
    let drop = format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(&name)
    );
    sqlx::query(AssertSqlSafe(drop.as_str()))
        .execute(&mut conn)
        .await
        .map_err(|e| DropDatabaseError::Drop(e.into()))?;
    let _ = conn.close().await;
    Ok(())
}

/// A database name as an identifier: names cannot be bound, so it is quoted as Postgres does
/// (any embedded quote doubled).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the target database through the `postgres` maintenance database when it is missing.
/// Two replicas may race here: the loser's "already exists" error is success.
async fn ensure_database(options: &PgConnectOptions) -> Result<(), RepoError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let maintenance = options.clone().database("postgres");
    let mut conn = PgConnection::connect_with(&maintenance).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let statement = format!("CREATE DATABASE {}", quote_ident(&name));
        match sqlx::query(AssertSqlSafe(statement.as_str()))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_the_password_and_the_key() {
        let settings = DbSettings {
            secrets: KeySource::Encoded("c2VjcmV0LWtleQ==".into()),
            ..DbSettings::new("postgres://idm:Pg-pass-1@db:5432/idm?password=Pg-pass-2")
        };
        let shown = format!("{settings:?}");
        for secret in ["Pg-pass-1", "Pg-pass-2", "c2VjcmV0LWtleQ=="] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("postgres://idm:***@db:5432/idm"), "{shown}");
    }
}
