//! Audit retention: rows older than the retention period go, newer ones stay, in both audit
//! tables, however many there are.

use std::time::Duration;

use idm_sync::repo::audit::ReconAuditEntry;
use idm_sync::repo::audit_retention::{self, Purged};
use idm_sync::repo::sync_audit::SyncAuditEntry;
use idm_sync::repo::{audit, sync_audit};

use crate::helpers::TestDb;

/// Recon audit entries whose mapping is `tag`.
fn entries(n: usize, tag: &str) -> Vec<ReconAuditEntry> {
    (0..n)
        .map(|i| ReconAuditEntry {
            event_name: "recon",
            entry_type: "entry",
            recon_id: "r".into(),
            mapping: tag.into(),
            timestamp: "2026-12-01T00:00:00Z".into(),
            reconciling: "source",
            situation: Some("FOUND"),
            action: Some("UPDATE"),
            status: "SUCCESS",
            message: None,
            source_object_id: Some(format!("system/salesforce/User/{i}")),
            target_object_id: None,
            link_qualifier: "default",
        })
        .collect()
}

/// Sync audit entries whose mapping is `tag`.
fn sync_entries(n: usize, tag: &str) -> Vec<SyncAuditEntry> {
    (0..n)
        .map(|i| SyncAuditEntry {
            mapping: tag.into(),
            situation: "CONFIRMED",
            action: "UPDATE",
            status: "SUCCESS",
            message: None,
            source_object_id: format!("managed/user/{i}"),
            target_object_id: None,
            revision: 1,
            attempts: 1,
            latency_ms: 0,
            timestamp: "2026-12-01T00:00:00.000Z".into(),
        })
        .collect()
}

async fn count(db: &TestDb, table: &str, tag: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE body->>'mapping' = $1"
    )))
    .bind(tag)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn rows_past_the_retention_are_purged_and_the_rest_kept() {
    let db = TestDb::new().await;
    // More old recon rows than one delete statement takes.
    audit::insert_batch(&db.pool, "old-run", &entries(12_500, "old"))
        .await
        .unwrap();
    sync_audit::insert_batch(&db.pool, &sync_entries(40, "old"))
        .await
        .unwrap();
    for table in ["recon_audit", "sync_audit"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET created_at = now() - interval '31 days'"
        )))
        .execute(&db.pool)
        .await
        .unwrap();
    }
    audit::insert_batch(&db.pool, "new-run", &entries(30, "new"))
        .await
        .unwrap();
    sync_audit::insert_batch(&db.pool, &sync_entries(20, "new"))
        .await
        .unwrap();

    let thirty_days = Duration::from_secs(30 * 86_400);
    let purged = audit_retention::purge(&db.pool, thirty_days).await.unwrap();
    assert_eq!(
        purged,
        Purged {
            recon: 12_500,
            sync: 40
        }
    );
    for table in ["recon_audit", "sync_audit"] {
        assert_eq!(count(&db, table, "old").await, 0, "{table}");
    }
    assert_eq!(count(&db, "recon_audit", "new").await, 30);
    assert_eq!(count(&db, "sync_audit", "new").await, 20);
    // Nothing left to purge.
    let again = audit_retention::purge(&db.pool, thirty_days).await.unwrap();
    assert_eq!(again, Purged::default());

    // A zero retention keeps everything: the loop returns without purging.
    audit_retention::run(
        db.pool.clone(),
        Duration::ZERO,
        Duration::from_millis(1),
        std::future::pending(),
    )
    .await;
    assert_eq!(count(&db, "recon_audit", "new").await, 30);

    // The serve loop purges at once, then every period, until shutdown.
    sync_audit::insert_batch(&db.pool, &sync_entries(3, "late"))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE sync_audit SET created_at = now() - interval '31 days' WHERE body->>'mapping' = 'late'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    audit_retention::run(
        db.pool.clone(),
        thirty_days,
        Duration::from_millis(20),
        tokio::time::sleep(Duration::from_millis(300)),
    )
    .await;
    assert_eq!(count(&db, "sync_audit", "late").await, 0);
    assert_eq!(count(&db, "sync_audit", "new").await, 20);
}
