//! Log-in throttling: after `max_failures` failed log-ins for one user name within the window,
//! that name is locked for the lockout period, on every replica (the counts live in Postgres).
//! While locked the password is not even checked, so a guess during a lockout learns nothing.
//! Keyed by user name, not address: behind a proxy every browser shares one address.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// How long failures count towards a lockout: a failure older than this starts a new count.
const WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failed log-ins within the window that lock the name (`IDM_ADMIN_LOGIN_MAX_FAILURES`, default 5).
    pub max_failures: u32,
    /// How long the name stays locked (`IDM_ADMIN_LOGIN_LOCKOUT_MINUTES`, default 5).
    pub lockout: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            max_failures: 5,
            lockout: Duration::from_secs(5 * 60),
        }
    }
}

fn key(username: &str) -> String {
    username.trim().to_lowercase()
}

fn interval(d: Duration) -> String {
    format!("{} milliseconds", d.as_millis())
}

/// Until when `username` is locked, if it is now.
pub async fn locked_until(pool: &PgPool, username: &str) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT locked_until FROM admin_login_failures WHERE username = $1 AND locked_until > now()",
    )
    .bind(key(username))
    .fetch_optional(pool)
    .await
    .map(Option::flatten)
}

/// Counts a failed log-in; returns until when the name is now locked, if this failure locked it.
pub async fn record_failure(
    pool: &PgPool,
    settings: &ThrottleSettings,
    username: &str,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    // Rows of names nobody has tried lately only take space (guesses of random names add them).
    sqlx::query(
        "DELETE FROM admin_login_failures WHERE last_failed < now() - $1::interval \
         AND (locked_until IS NULL OR locked_until < now())",
    )
    .bind(interval(WINDOW))
    .execute(pool)
    .await?;
    let failures: i32 = sqlx::query_scalar(
        "INSERT INTO admin_login_failures AS f (username, failures, last_failed) VALUES ($1, 1, now()) \
         ON CONFLICT (username) DO UPDATE SET \
           failures = CASE WHEN f.last_failed < now() - $2::interval THEN 1 ELSE f.failures + 1 END, \
           last_failed = now() \
         RETURNING failures",
    )
    .bind(key(username))
    .bind(interval(WINDOW))
    .fetch_one(pool)
    .await?;
    if u32::try_from(failures).unwrap_or(0) < settings.max_failures {
        return Ok(None);
    }
    // Locked, and the count starts again: the next lock needs as many failures again.
    sqlx::query_scalar(
        "UPDATE admin_login_failures SET failures = 0, locked_until = now() + $2::interval \
         WHERE username = $1 RETURNING locked_until",
    )
    .bind(key(username))
    .bind(interval(settings.lockout))
    .fetch_one(pool)
    .await
}

/// A successful log-in forgets the name's failures.
pub async fn clear(pool: &PgPool, username: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM admin_login_failures WHERE username = $1")
        .bind(key(username))
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_only_in_case_and_spaces_share_a_count() {
        assert_eq!(key(" OpenIDM-Admin "), key("openidm-admin"));
        assert_eq!(interval(Duration::from_secs(300)), "300000 milliseconds");
    }
}
