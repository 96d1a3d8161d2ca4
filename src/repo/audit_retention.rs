//! Audit retention: recon and sync audit rows older than the retention period are deleted,
//! a bounded batch per statement so no purge holds locks or bloats one transaction.

use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::PgPool;

use super::RepoError;

/// Rows deleted per statement.
const BATCH: i64 = 10_000;

/// Rows deleted by one purge, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub recon: u64,
    pub sync: u64,
}

/// Deletes `recon_audit` and `sync_audit` rows created more than `older_than` ago.
pub async fn purge(pool: &PgPool, older_than: Duration) -> Result<Purged, RepoError> {
    Ok(Purged {
        recon: purge_table(pool, "recon_audit", older_than).await?,
        sync: purge_table(pool, "sync_audit", older_than).await?,
    })
}

async fn purge_table(pool: &PgPool, table: &str, older_than: Duration) -> Result<u64, RepoError> {
    // `table` is one of two constants above, never input.
    let sql = format!(
        "DELETE FROM {table} WHERE id IN (SELECT id FROM {table}
           WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)"
    );
    let mut total = 0;
    loop {
        let deleted = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(older_than.as_secs_f64())
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        total += deleted;
        if deleted < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Purges every `every` until `shutdown`, logging what went; `retention` zero keeps all.
pub async fn run(
    pool: PgPool,
    retention: Duration,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    if retention.is_zero() {
        return;
    }
    let purging = async {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match purge(&pool, retention).await {
                Ok(p) if p.recon + p.sync > 0 => {
                    tracing::info!(recon = p.recon, sync = p.sync, "purged old audit rows");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot purge old audit rows");
                }
            }
        }
    };
    tokio::select! {
        () = purging => {}
        () = shutdown => {}
    }
}
