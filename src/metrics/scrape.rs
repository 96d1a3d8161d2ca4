//! What is read from Postgres at scrape time, not counted in memory: any replica's scrape then
//! sees the deployment's state. Each is one small index-backed query.

use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::repo::{Pool, RepoError, outbox, sync_failures};

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

/// A registry of this scrape's figures, or of `idm_database_up 0` alone when they could not
/// be read.
pub fn registry(figures: Option<&DbFigures>) -> Registry {
    let mut r = Registry::default();
    r.register(
        "idm_database_up",
        "1 when this scrape could read its figures from Postgres.",
        ConstGauge::new(i64::from(figures.is_some())),
    );
    let Some(f) = figures else {
        return r;
    };
    r.register(
        "idm_outbox_backlog",
        "Outbox rows (committed changes) not yet published to the broker.",
        ConstGauge::new(f.outbox_backlog),
    );
    r.register_with_unit(
        "idm_outbox_oldest_unpublished_age",
        "Age of the oldest unpublished outbox row; 0 when none waits.",
        Unit::Seconds,
        ConstGauge::new(f.oldest_unpublished_age_seconds),
    );
    r.register(
        "idm_sync_failures_open",
        "Implicit-sync failures recorded and not yet cleared (see /openidm/sync/failures).",
        ConstGauge::new(f.sync_failures_open),
    );
    r
}
