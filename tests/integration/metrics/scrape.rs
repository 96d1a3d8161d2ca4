//! `/metrics` after real traffic: the counters, the histogram and the Postgres figures move by
//! exactly what happened.

use super::exposition::Scrape;
use super::{env, root, scrape, scrape_text};
use crate::helpers::TestApp;
use crate::worker::wait_until;

const PUBLISHED: &str = "idm_relay_events_published_total";
const CONSUMED: &str = "idm_worker_events_consumed_total";
const LATENCY_COUNT: &str = "idm_sync_latency_seconds_count";
const LATENCY_SUM: &str = "idm_sync_latency_seconds_sum";
const CALLS: &str = "idm_salesforce_api_calls_total";
const SYSTEM: (&str, &str) = ("system", "salesforce");

fn update_ok(s: &Scrape) -> f64 {
    s.value(
        CALLS,
        &[SYSTEM, ("operation", "update"), ("outcome", "success")],
    )
}

#[tokio::test]
async fn a_synced_rest_edit_moves_each_figure_by_one() {
    let env = env(5).await;
    let worker = env.spawn_worker();
    let root = root(&env.app);
    let id = env.create("metrics.edit@idm-sync.test").await;
    env.wait_synced(&id).await;
    // The relay counts after its commit and the worker after its ack: both may come a moment
    // after the link shows the sync.
    wait_until("the create counted", async || {
        let s = scrape(&root).await;
        s.value(PUBLISHED, &[]) >= 1.0
            && s.value(CONSUMED, &[SYSTEM]) >= 1.0
            && s.value(LATENCY_COUNT, &[SYSTEM]) >= 1.0
    })
    .await;
    let before = scrape(&root).await;
    assert_eq!(before.value(PUBLISHED, &[]), 1.0);
    assert_eq!(before.value(CONSUMED, &[SYSTEM]), 1.0);
    assert_eq!(before.value(LATENCY_COUNT, &[SYSTEM]), 1.0);
    assert!(
        before.value(
            CALLS,
            &[SYSTEM, ("operation", "token"), ("outcome", "success")]
        ) >= 1.0
    );

    env.set_sn(&id, "Edited").await;
    let user = env.wait_synced(&id).await;
    assert_eq!(user["LastName"], "Edited");
    wait_until("the edit counted everywhere", async || {
        let s = scrape(&root).await;
        s.value(PUBLISHED, &[]) >= 2.0
            && s.value(CONSUMED, &[SYSTEM]) >= 2.0
            && s.value(LATENCY_COUNT, &[SYSTEM]) >= 2.0
    })
    .await;
    let after = scrape(&root).await;
    assert_eq!(
        after.value(PUBLISHED, &[]) - before.value(PUBLISHED, &[]),
        1.0
    );
    assert_eq!(
        after.value(CONSUMED, &[SYSTEM]) - before.value(CONSUMED, &[SYSTEM]),
        1.0
    );
    assert_eq!(
        after.value(LATENCY_COUNT, &[SYSTEM]) - before.value(LATENCY_COUNT, &[SYSTEM]),
        1.0
    );
    let took = after.value(LATENCY_SUM, &[SYSTEM]) - before.value(LATENCY_SUM, &[SYSTEM]);
    assert!(took > 0.0 && took < 60.0, "latency {took}");
    let inf = |s: &Scrape| s.value("idm_sync_latency_seconds_bucket", &[SYSTEM, ("le", "+Inf")]);
    assert_eq!(inf(&after) - inf(&before), 1.0);
    // The edit is one PATCH of the user: one update call, nothing else.
    assert_eq!(update_ok(&after) - update_ok(&before), 1.0);
    let calls = |s: &Scrape| -> f64 {
        s.samples
            .iter()
            .filter(|x| x.name == CALLS)
            .map(|x| x.value)
            .sum()
    };
    assert_eq!(calls(&after) - calls(&before), 1.0);
    // Everything published and in step.
    assert_eq!(after.get("idm_outbox_backlog", &[]), Some(0.0));
    assert_eq!(
        after.get("idm_outbox_oldest_unpublished_age_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(after.get("idm_sync_failures_open", &[]), Some(0.0));
    assert_eq!(after.get("idm_database_up", &[]), Some(1.0));
    // The emulator's Sforce-Limit-Info, as last seen.
    assert!(after.value("idm_salesforce_api_usage_used", &[SYSTEM]) >= 2.0);
    assert!(after.value("idm_salesforce_api_usage_limit", &[SYSTEM]) > 0.0);
    worker.stop().await;
}

#[tokio::test]
async fn backlog_age_and_open_failures_come_from_postgres() {
    // No relay here: every change stays unpublished.
    let app = TestApp::spawn().await;
    let root = root(&app);
    let empty = scrape(&root).await;
    assert_eq!(empty.get("idm_outbox_backlog", &[]), Some(0.0));
    assert_eq!(
        empty.get("idm_outbox_oldest_unpublished_age_seconds", &[]),
        Some(0.0)
    );
    app.create_user("backlog.one").await;
    app.create_user("backlog.two").await;
    sqlx::query("UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE id = (SELECT min(id) FROM outbox)")
        .execute(&app.db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sync_failures (id, mapping, object_type, object_id, object_rev, situation, action, message, attempts) \
         VALUES ('f1', 'managedUser_systemSalesforceUser', 'user', 'u1', 1, 'ABSENT', 'CREATE', 'boom', 1)",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let s = scrape(&root).await;
    assert_eq!(s.get("idm_outbox_backlog", &[]), Some(2.0));
    let age = s.value("idm_outbox_oldest_unpublished_age_seconds", &[]);
    assert!((90.0..120.0).contains(&age), "age {age}");
    assert_eq!(s.get("idm_sync_failures_open", &[]), Some(1.0));
    // Counts only: the scrape names no user.
    let text = scrape_text(&root).await;
    assert!(
        !text.contains("backlog.one") && !text.contains("boom"),
        "{text}"
    );
}
