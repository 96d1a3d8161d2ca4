//! A connector's stored Salesforce tokens: the refresh token (`salesforce_tokens`), the shared
//! access token (`salesforce_sessions`), and the refresh lock that makes every process sharing
//! the database refresh one at a time. Values arrive here sealed; this module never sees a
//! secret in the clear.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::{PgConnection, PgExecutor};

use super::RepoError;

/// The refresh lock's advisory key: a 64-bit hash of the system name, the same in every process.
const REFRESH_LOCK_KEY: &str = "hashtextextended('idm-sync salesforce refresh ' || $1, 0)";

/// A stored refresh token (sealed) and what was stored with it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRow {
    pub sealed_refresh_token: String,
    pub instance_url: Option<String>,
    pub conf_refresh_token_sha256: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A stored access token (sealed) shared by the connector's processes.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub sealed_access_token: String,
    pub instance_url: String,
    pub refresh_token_sha256: String,
    pub generation: i64,
    pub issued_at: DateTime<Utc>,
}

/// A column holding sealed secrets, as [`stored_secrets`] and [`reseal`] name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    RefreshToken,
    AccessToken,
    ClientSecret,
}

impl SealedColumn {
    pub const ALL: [SealedColumn; 3] = [
        SealedColumn::RefreshToken,
        SealedColumn::AccessToken,
        SealedColumn::ClientSecret,
    ];

    fn table_column(self) -> (&'static str, &'static str) {
        match self {
            SealedColumn::RefreshToken => ("salesforce_tokens", "refresh_token"),
            SealedColumn::AccessToken => ("salesforce_sessions", "access_token"),
            SealedColumn::ClientSecret => ("salesforce_connector_settings", "client_secret"),
        }
    }
}

/// Takes the connector's refresh lock for the rest of the transaction `tx` is in, waiting at
/// most `wait` for it. The transaction also ends on its own if it sits idle longer than
/// `wait` (a holder stuck between statements must not keep every other process waiting).
pub async fn lock_refresh(
    tx: &mut PgConnection,
    system: &str,
    wait: Duration,
) -> Result<(), RepoError> {
    let ms = format!("{}ms", wait.as_millis().max(1));
    // `set_config(…, true)` is SET LOCAL: these end with the transaction. The statement timeout
    // is set too so that the role's own (shorter) one does not cut the wait short.
    sqlx::query(
        "SELECT set_config('lock_timeout', $1, true), \
                set_config('statement_timeout', $1, true), \
                set_config('idle_in_transaction_session_timeout', $1, true)",
    )
    .bind(&ms)
    .execute(&mut *tx)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "SELECT pg_advisory_xact_lock({REFRESH_LOCK_KEY})"
    )))
    .bind(system)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn load_token(
    db: impl PgExecutor<'_>,
    system: &str,
) -> Result<Option<TokenRow>, RepoError> {
    Ok(sqlx::query_as(
        "SELECT refresh_token AS sealed_refresh_token, instance_url, conf_refresh_token_sha256, \
                updated_at \
         FROM salesforce_tokens WHERE system_name = $1",
    )
    .bind(system)
    .fetch_optional(db)
    .await?)
}

/// The instance URL stored with the system's refresh token, if any.
pub async fn instance_url(
    db: impl PgExecutor<'_>,
    system: &str,
) -> Result<Option<String>, RepoError> {
    let url: Option<Option<String>> =
        sqlx::query_scalar("SELECT instance_url FROM salesforce_tokens WHERE system_name = $1")
            .bind(system)
            .fetch_optional(db)
            .await?;
    Ok(url.flatten())
}

/// Writes (or replaces) the system's refresh token; an absent instance URL keeps the stored one.
pub async fn save_token(
    db: impl PgExecutor<'_>,
    system: &str,
    sealed_refresh_token: &str,
    instance_url: Option<&str>,
    conf_refresh_token_sha256: Option<&str>,
) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO salesforce_tokens \
           (system_name, refresh_token, instance_url, conf_refresh_token_sha256, updated_at) \
         VALUES ($1, $2, $3, $4, now()) \
         ON CONFLICT (system_name) DO UPDATE SET \
           refresh_token = EXCLUDED.refresh_token, \
           instance_url = COALESCE(EXCLUDED.instance_url, salesforce_tokens.instance_url), \
           conf_refresh_token_sha256 = EXCLUDED.conf_refresh_token_sha256, \
           updated_at = now()",
    )
    .bind(system)
    .bind(sealed_refresh_token)
    .bind(instance_url)
    .bind(conf_refresh_token_sha256)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn load_session(
    db: impl PgExecutor<'_>,
    system: &str,
) -> Result<Option<SessionRow>, RepoError> {
    Ok(sqlx::query_as(
        "SELECT access_token AS sealed_access_token, instance_url, refresh_token_sha256, \
                generation, issued_at \
         FROM salesforce_sessions WHERE system_name = $1",
    )
    .bind(system)
    .fetch_optional(db)
    .await?)
}

/// Writes (or replaces) the system's shared access token; returns its generation.
pub async fn save_session(
    db: impl PgExecutor<'_>,
    system: &str,
    sealed_access_token: &str,
    instance_url: &str,
    refresh_token_sha256: &str,
    issued_at: DateTime<Utc>,
) -> Result<i64, RepoError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO salesforce_sessions \
           (system_name, access_token, instance_url, refresh_token_sha256, generation, issued_at) \
         VALUES ($1, $2, $3, $4, 1, $5) \
         ON CONFLICT (system_name) DO UPDATE SET \
           access_token = EXCLUDED.access_token, instance_url = EXCLUDED.instance_url, \
           refresh_token_sha256 = EXCLUDED.refresh_token_sha256, \
           generation = salesforce_sessions.generation + 1, \
           issued_at = EXCLUDED.issued_at, updated_at = now() \
         RETURNING generation",
    )
    .bind(system)
    .bind(sealed_access_token)
    .bind(instance_url)
    .bind(refresh_token_sha256)
    .bind(issued_at)
    .fetch_one(db)
    .await?)
}

/// Every `(system_name, stored value)` of a sealed column.
pub async fn stored_secrets(
    db: impl PgExecutor<'_>,
    column: SealedColumn,
) -> Result<Vec<(String, String)>, RepoError> {
    let (table, column) = column.table_column();
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT system_name, {column} FROM {table}"
    )))
    .fetch_all(db)
    .await?)
}

/// Replaces a stored value by its sealed form, unless another writer changed it meanwhile;
/// returns whether it did.
pub async fn reseal(
    db: impl PgExecutor<'_>,
    column: SealedColumn,
    system: &str,
    stored: &str,
    sealed: &str,
) -> Result<bool, RepoError> {
    let (table, column) = column.table_column();
    let done = sqlx::query(AssertSqlSafe(format!(
        "UPDATE {table} SET {column} = $1 WHERE system_name = $2 AND {column} = $3"
    )))
    .bind(sealed)
    .bind(system)
    .bind(stored)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}
