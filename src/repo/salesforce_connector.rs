//! What an operator saved for a Salesforce connector at run time (the Admin UI): its
//! credentials (`salesforce_connector_settings`, the consumer secret arriving sealed) and its
//! enabled state (`salesforce_connector_enabled`). Both override the provisioner file.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::RepoError;

/// Saved credentials, the secret still sealed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CredentialsRow {
    pub login_url: String,
    pub client_id: String,
    pub sealed_client_secret: String,
    pub updated_at: DateTime<Utc>,
}

pub async fn load_credentials(
    db: impl PgExecutor<'_>,
    system: &str,
) -> Result<Option<CredentialsRow>, RepoError> {
    Ok(sqlx::query_as(
        "SELECT login_url, client_id, client_secret AS sealed_client_secret, updated_at \
         FROM salesforce_connector_settings WHERE system_name = $1",
    )
    .bind(system)
    .fetch_optional(db)
    .await?)
}

/// Saves (or replaces) the credentials of `system`.
pub async fn save_credentials(
    db: impl PgExecutor<'_>,
    system: &str,
    login_url: &str,
    client_id: &str,
    sealed_client_secret: &str,
) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO salesforce_connector_settings \
           (system_name, login_url, client_id, client_secret, updated_at) \
         VALUES ($1, $2, $3, $4, now()) \
         ON CONFLICT (system_name) DO UPDATE SET login_url = EXCLUDED.login_url, \
           client_id = EXCLUDED.client_id, client_secret = EXCLUDED.client_secret, \
           updated_at = now()",
    )
    .bind(system)
    .bind(login_url)
    .bind(client_id)
    .bind(sealed_client_secret)
    .execute(db)
    .await?;
    Ok(())
}

/// The enabled state saved for `system`, if any.
pub async fn load_enabled(
    db: impl PgExecutor<'_>,
    system: &str,
) -> Result<Option<bool>, RepoError> {
    Ok(sqlx::query_scalar(
        "SELECT enabled FROM salesforce_connector_enabled WHERE system_name = $1",
    )
    .bind(system)
    .fetch_optional(db)
    .await?)
}

/// Saves the enabled state of `system`.
pub async fn save_enabled(
    db: impl PgExecutor<'_>,
    system: &str,
    on: bool,
) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO salesforce_connector_enabled (system_name, enabled, updated_at) \
         VALUES ($1, $2, now()) ON CONFLICT (system_name) \
         DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now()",
    )
    .bind(system)
    .bind(on)
    .execute(db)
    .await?;
    Ok(())
}
