//! What is read from Postgres at scrape time, not counted in memory: any replica's scrape then
//! sees the deployment's state. Each is one small index-backed query.

use crate::repo::Pool;

use super::encode::{Kind, TextEncoder};
use crate::repo::{RepoError, outbox, sync_failures};

/// The figures of one scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbFigures {
    pub outbox_backlog: i64,
    /// 0 when nothing waits.
    pub oldest_unpublished_age_seconds: f64,
    pub sync_failures_open: i64,
}

/// Reads the figures.
pub async fn read(pool: &Pool) -> Result<DbFigures, RepoError> {
    let (outbox_backlog, oldest) = outbox::backlog_and_oldest(pool).await?;
    Ok(DbFigures {
        outbox_backlog,
        oldest_unpublished_age_seconds: oldest.unwrap_or(0.0).max(0.0),
        sync_failures_open: sync_failures::count(pool).await?,
    })
}

/// Writes the figures, or `idm_database_up 0` alone when they could not be read.
pub fn encode(figures: Option<&DbFigures>, out: &mut TextEncoder) {
    out.header(
        "idm_database_up",
        "1 when this scrape could read its figures from Postgres.",
        Kind::Gauge,
    );
    out.sample(
        "idm_database_up",
        &[],
        f64::from(u8::from(figures.is_some())),
    );
    let Some(f) = figures else {
        return;
    };
    out.header(
        "idm_outbox_backlog",
        "Outbox rows (committed changes) not yet published to the broker.",
        Kind::Gauge,
    );
    out.sample("idm_outbox_backlog", &[], f.outbox_backlog as f64);
    out.header(
        "idm_outbox_oldest_unpublished_age_seconds",
        "Age of the oldest unpublished outbox row; 0 when none waits.",
        Kind::Gauge,
    );
    out.sample(
        "idm_outbox_oldest_unpublished_age_seconds",
        &[],
        f.oldest_unpublished_age_seconds,
    );
    out.header(
        "idm_sync_failures_open",
        "Implicit-sync failures recorded and not yet cleared (see /openidm/sync/failures).",
        Kind::Gauge,
    );
    out.sample("idm_sync_failures_open", &[], f.sync_failures_open as f64);
}
