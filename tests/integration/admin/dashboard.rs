//! Sync health: the outbox backlog, a sync failure with its Salesforce error, Retry and
//! Retry all (an outbox row each, as over REST), the schedules.

use idm_sync::repo::sync_failures::{self, NewFailure};
use reqwest::StatusCode;

use super::support::{Browser, assert_well_formed};
use crate::helpers::TestApp;

async fn fail(app: &TestApp, id: &str, rev: i64) -> String {
    let mut tx = app.db.pool.begin().await.unwrap();
    sync_failures::record(
        &mut tx,
        &[NewFailure {
            mapping: "managedUser_systemSalesforceUser",
            object_type: "user",
            object_id: id,
            object_rev: rev,
            target_id: None,
            situation: "ABSENT",
            action: "CREATE",
            error_code: Some("DUPLICATE_USERNAME"),
            message: "Duplicate Username.<b>",
            attempts: 1,
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    sqlx::query_scalar("SELECT id FROM sync_failures WHERE object_id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn failures_show_and_retry() {
    let app = TestApp::spawn().await;
    let a = app.create_user("alice").await;
    let c = app.create_user("carol").await;
    let (a_id, c_id) = (a["_id"].as_str().unwrap(), c["_id"].as_str().unwrap());
    let fa = fail(&app, a_id, a["_rev"].as_str().unwrap().parse().unwrap()).await;
    fail(&app, c_id, c["_rev"].as_str().unwrap().parse().unwrap()).await;

    let b = Browser::login(&app).await;
    let page = b.get_ok("/admin").await;
    assert_well_formed(&page);
    assert!(
        page.contains("id=\"outbox-backlog\">2<"),
        "no relay runs here: both creates wait"
    );
    assert!(page.contains("DUPLICATE_USERNAME: Duplicate Username.&lt;b&gt;"));
    assert!(page.contains(&format!("id=\"failure-{fa}\"")));
    assert!(page.contains("id=\"schedule-recon\""));
    assert!(page.contains("id=\"workers-none\""), "no worker runs yet");
    idm_sync::repo::workers::heartbeat(&app.db.pool, "worker-a", "org-<a>", "host-<1>", &[0, 1, 2])
        .await
        .unwrap();
    let page = b.get_ok("/admin").await;
    assert_well_formed(&page);
    assert!(
        page.contains("<td>worker-a</td><td>host-&lt;1&gt;</td><td>org-&lt;a&gt;</td>"),
        "{page}"
    );
    assert!(page.contains("<td>0, 1, 2</td>"));

    let retried = b
        .post(&format!("/admin/sync/failures/{fa}/retry"), &[])
        .await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER);
    assert_eq!(app.outbox_for(a_id).await.last().unwrap().0, "sync");
    assert_eq!(app.outbox_for(c_id).await.len(), 1);
    assert!(
        b.get_ok(retried.location.as_deref().unwrap())
            .await
            .contains("Queued for another sync")
    );
    assert_eq!(
        b.post("/admin/sync/failures/nope/retry", &[]).await.status,
        StatusCode::NOT_FOUND
    );

    let all = b.post("/admin/sync/retry-all", &[]).await;
    assert_eq!(all.status, StatusCode::SEE_OTHER);
    assert_eq!(app.outbox_for(c_id).await.last().unwrap().0, "sync");
    assert!(
        b.get_ok(all.location.as_deref().unwrap())
            .await
            .contains("Queued 2 failures")
    );
}
