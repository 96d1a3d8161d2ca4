//! Authorizations the Admin UI started and Salesforce has not yet redirected back
//! (`admin_oauth_pending`): keyed by the OAuth `state`, single use, expired after 15 minutes.
//! The consumer secret and the PKCE verifier arrive sealed; this module never sees them in the
//! clear.

use sqlx::PgExecutor;

use super::RepoError;

/// An authorization to keep until Salesforce's redirect comes back.
#[derive(Debug, Clone)]
pub struct NewPending<'a> {
    /// The OAuth `state` sent to Salesforce: the row's key.
    pub state: &'a str,
    /// The admin session that started it.
    pub session_id: &'a str,
    pub system_name: &'a str,
    pub login_url: &'a str,
    pub client_id: &'a str,
    pub sealed_client_secret: &'a str,
    pub redirect_uri: &'a str,
    /// The authorization's PKCE code verifier, sealed.
    pub sealed_code_verifier: &'a str,
}

/// A pending authorization, as [`take`] hands it back.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Pending {
    pub session_id: String,
    /// The connector being authorized.
    pub system_name: String,
    pub login_url: String,
    pub client_id: String,
    pub sealed_client_secret: String,
    pub redirect_uri: String,
    pub sealed_code_verifier: String,
}

/// Deletes the authorizations older than 15 minutes (they hold a secret for nothing); returns
/// how many. Needs no transaction.
pub async fn purge_expired(db: impl PgExecutor<'_>) -> Result<u64, RepoError> {
    let done = sqlx::query(
        "DELETE FROM admin_oauth_pending WHERE created_at < now() - interval '15 minutes'",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Keeps an authorization until [`take`] (or [`purge_expired`]) removes it. Needs no
/// transaction.
pub async fn insert(db: impl PgExecutor<'_>, pending: &NewPending<'_>) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO admin_oauth_pending (state, session_id, system_name, login_url, client_id, client_secret, redirect_uri, code_verifier) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(pending.state)
    .bind(pending.session_id)
    .bind(pending.system_name)
    .bind(pending.login_url)
    .bind(pending.client_id)
    .bind(pending.sealed_client_secret)
    .bind(pending.redirect_uri)
    .bind(pending.sealed_code_verifier)
    .execute(db)
    .await?;
    Ok(())
}

/// Removes and returns the authorization of OAuth `state`, if it exists and is under 15
/// minutes old: single use, whatever the caller does next. One statement, so two callbacks
/// with the same state cannot both get it; needs no transaction.
pub async fn take(db: impl PgExecutor<'_>, state: &str) -> Result<Option<Pending>, RepoError> {
    let pending = sqlx::query_as(
        "DELETE FROM admin_oauth_pending WHERE state = $1 AND created_at >= now() - interval '15 minutes' \
         RETURNING session_id, system_name, login_url, client_id, client_secret AS sealed_client_secret, redirect_uri, \
         code_verifier AS sealed_code_verifier",
    )
    .bind(state)
    .fetch_optional(db)
    .await?;
    Ok(pending)
}
