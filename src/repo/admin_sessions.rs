//! Admin UI sessions (`admin_sessions`): rows keyed by the SHA-256 of the cookie's token. A
//! session is live while it was used within the idle time, was created within the absolute
//! lifetime, and carries the running admin credential's fingerprint.

use std::time::Duration;

use sqlx::PgExecutor;

use super::RepoError;

/// What makes a session live, from the running configuration.
#[derive(Debug, Clone, Copy)]
pub struct Liveness<'a> {
    pub idle: Duration,
    pub max_age: Duration,
    /// The admin credential's fingerprint.
    pub credential: &'a str,
}

/// A live session's row.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub username: String,
    pub csrf_token: String,
    /// `last_seen` is more than a minute old: worth touching.
    pub stale: bool,
}

/// The liveness condition over $2 (idle seconds), $3 (lifetime seconds), $4 (credential).
macro_rules! live_where {
    () => {
        "last_seen >= now() - make_interval(secs => $2) \
         AND created_at >= now() - make_interval(secs => $3) AND credential = $4"
    };
}

/// Deletes sessions past their idle time or lifetime (not those of another credential: a
/// replica still running the previous configuration may serve them until it is replaced).
pub async fn purge_expired(
    db: impl PgExecutor<'_>,
    idle: Duration,
    max_age: Duration,
) -> Result<u64, RepoError> {
    let done = sqlx::query(
        "DELETE FROM admin_sessions WHERE last_seen < now() - make_interval(secs => $1) \
         OR created_at < now() - make_interval(secs => $2)",
    )
    .bind(idle.as_secs_f64())
    .bind(max_age.as_secs_f64())
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    id: &str,
    username: &str,
    csrf_token: &str,
    credential: &str,
) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO admin_sessions (id, username, csrf_token, credential) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(username)
    .bind(csrf_token)
    .bind(credential)
    .execute(db)
    .await?;
    Ok(())
}

/// Session `id`, if live.
pub async fn find_live(
    db: impl PgExecutor<'_>,
    id: &str,
    live: Liveness<'_>,
) -> Result<Option<SessionRow>, RepoError> {
    let row: Option<(String, String, bool)> = sqlx::query_as(concat!(
        "SELECT username, csrf_token, last_seen < now() - interval '1 minute' \
         FROM admin_sessions WHERE id = $1 AND ",
        live_where!()
    ))
    .bind(id)
    .bind(live.idle.as_secs_f64())
    .bind(live.max_age.as_secs_f64())
    .bind(live.credential)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(username, csrf_token, stale)| SessionRow {
        username,
        csrf_token,
        stale,
    }))
}

pub async fn is_live(
    db: impl PgExecutor<'_>,
    id: &str,
    live: Liveness<'_>,
) -> Result<bool, RepoError> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT EXISTS (SELECT 1 FROM admin_sessions WHERE id = $1 AND ",
        live_where!(),
        ")"
    ))
    .bind(id)
    .bind(live.idle.as_secs_f64())
    .bind(live.max_age.as_secs_f64())
    .bind(live.credential)
    .fetch_one(db)
    .await?)
}

pub async fn touch(db: impl PgExecutor<'_>, id: &str) -> Result<(), RepoError> {
    sqlx::query("UPDATE admin_sessions SET last_seen = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete(db: impl PgExecutor<'_>, id: &str) -> Result<(), RepoError> {
    sqlx::query("DELETE FROM admin_sessions WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
