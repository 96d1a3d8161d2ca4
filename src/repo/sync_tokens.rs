//! liveSync tokens: per source, the instant up to which Salesforce's changes were reconciled
//! (table `live_sync_tokens`).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::RepoError;

/// A stored token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncToken {
    pub token: DateTime<Utc>,
    pub rev: i64,
}

pub async fn get(db: impl PgExecutor<'_>, source: &str) -> Result<Option<SyncToken>, RepoError> {
    let row: Option<(DateTime<Utc>, i64)> =
        sqlx::query_as("SELECT token, rev FROM live_sync_tokens WHERE source = $1")
            .bind(source)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(token, rev)| SyncToken { token, rev }))
}

/// Records the first token of a source; a token already there (another replica's first pass
/// won the race) is kept and returned.
pub async fn init(
    db: impl PgExecutor<'_> + Copy,
    source: &str,
    token: DateTime<Utc>,
) -> Result<SyncToken, RepoError> {
    sqlx::query(
        "INSERT INTO live_sync_tokens (source, token) VALUES ($1, $2) ON CONFLICT (source) DO NOTHING",
    )
    .bind(source)
    .bind(token)
    .execute(db)
    .await?;
    get(db, source)
        .await?
        .ok_or_else(|| RepoError::Config(format!("the liveSync token of {source} vanished")))
}

/// Moves a token forward, never back: two passes that overlapped (REST and a schedule) each
/// processed everything before their own `latestDateCovered`, so the later one is right.
pub async fn advance(
    db: impl PgExecutor<'_>,
    source: &str,
    token: DateTime<Utc>,
) -> Result<Option<SyncToken>, RepoError> {
    let row: Option<(DateTime<Utc>, i64)> = sqlx::query_as(
        "UPDATE live_sync_tokens \
         SET rev = CASE WHEN token < $2 THEN rev + 1 ELSE rev END, \
             token = GREATEST(token, $2), updated = now() \
         WHERE source = $1 RETURNING token, rev",
    )
    .bind(source)
    .bind(token)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(token, rev)| SyncToken { token, rev }))
}

/// Sets a token outright (operators and tests: e.g. replay from a given instant).
pub async fn put(
    db: impl PgExecutor<'_>,
    source: &str,
    token: DateTime<Utc>,
) -> Result<SyncToken, RepoError> {
    let (token, rev): (DateTime<Utc>, i64) = sqlx::query_as(
        "INSERT INTO live_sync_tokens (source, token) VALUES ($1, $2) \
         ON CONFLICT (source) DO UPDATE SET token = $2, rev = live_sync_tokens.rev + 1, updated = now() \
         RETURNING token, rev",
    )
    .bind(source)
    .bind(token)
    .fetch_one(db)
    .await?;
    Ok(SyncToken { token, rev })
}

/// When the latest full reconciliation of `mapping` that succeeded started: every Salesforce
/// change before that instant is in the repository, so liveSync may resume from there. "Full"
/// = with its target phase, not a dry run, not `reconById` (liveSync's own runs have no target
/// phase, so they never count).
pub async fn last_full_recon_start(
    db: impl PgExecutor<'_>,
    mapping: &str,
) -> Result<Option<DateTime<Utc>>, RepoError> {
    Ok(sqlx::query_scalar(
        "SELECT max(started) FROM recon_runs \
         WHERE mapping = $1 AND state = 'SUCCESS' \
           AND (parameters->>'runTargetPhase')::boolean \
           AND NOT (parameters->>'analyze')::boolean \
           AND parameters->>'sourceId' IS NULL",
    )
    .bind(mapping)
    .fetch_one(db)
    .await?)
}
