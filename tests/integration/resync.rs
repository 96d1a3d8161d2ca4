//! `POST /openidm/sync?_action=resync`: every user not known to be in step with Salesforce (its
//! link lags its revision, it has no link, or it is gone and its link remains) is enqueued
//! again, through the outbox like any change.

use crate::recon::support::{MAPPING, env};

const OUTBOUND: &str = "managedUser_systemSalesforceUser";

#[tokio::test]
async fn resync_enqueues_exactly_the_users_not_in_step() {
    let env = env(10).await;
    let summary = env.recon("_action=recon&waitForCompletion=true").await;
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    let resync = |mapping: &str| {
        env.app
            .post(&format!("/sync?_action=resync&mapping={mapping}"))
    };

    // Right after a recon every link is in step: nothing to do.
    let res = resync(OUTBOUND).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["resynced"], 0, "{body}");

    // Three users move ahead of their links without an outbox row (the drift resync repairs).
    let lagging: Vec<String> = sqlx::query_scalar(
        "UPDATE managed_objects SET rev = nextval('managed_object_rev_seq')
         WHERE id IN (SELECT second_id FROM links ORDER BY second_id LIMIT 3) RETURNING id",
    )
    .fetch_all(&env.app.db.pool)
    .await
    .unwrap();
    // A user with no link yet (its create event lost), and a link whose user is gone (its
    // deactivation lost).
    sqlx::query(
        "INSERT INTO managed_objects (object_type, id, rev, body)
         VALUES ('user', 'never-linked', nextval('managed_object_rev_seq'), '{\"userName\": \"never.linked@idm-sync.test\"}')",
    )
    .execute(&env.app.db.pool)
    .await
    .unwrap();
    let (gone, gone_rev): (String, i64) =
        sqlx::query_as("SELECT second_id, synced_rev FROM links ORDER BY second_id DESC LIMIT 1")
            .fetch_one(&env.app.db.pool)
            .await
            .unwrap();
    assert!(!lagging.contains(&gone));
    sqlx::query("DELETE FROM managed_objects WHERE id = $1")
        .bind(&gone)
        .execute(&env.app.db.pool)
        .await
        .unwrap();

    let before = env.outbox().await;
    let body: serde_json::Value = resync(OUTBOUND).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["resynced"], 5, "{body}");
    let queued: Vec<(String, i64)> = sqlx::query_as(
        "SELECT object_id, rev FROM outbox WHERE operation = 'sync' ORDER BY object_id",
    )
    .fetch_all(&env.app.db.pool)
    .await
    .unwrap();
    let mut expected: Vec<String> = lagging.clone();
    expected.extend(["never-linked".to_owned(), gone.clone()]);
    expected.sort();
    let ids: Vec<String> = queued.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, expected);
    let gone_queued = queued.iter().find(|(id, _)| *id == gone).unwrap();
    assert_eq!(
        gone_queued.1, gone_rev,
        "a gone user is queued at its link's revision"
    );
    assert_eq!(env.outbox().await, before + 5);
    let lanes: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT mapping FROM outbox WHERE operation = 'sync'")
            .fetch_all(&env.app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        lanes,
        [Some(OUTBOUND.to_owned())],
        "for that mapping's lane only"
    );

    // Bad requests.
    assert_eq!(resync("nope").send().await.unwrap().status(), 404);
    assert_eq!(
        resync(MAPPING).send().await.unwrap().status(),
        400,
        "an inbound mapping"
    );
    assert_eq!(
        env.app
            .post("/sync?_action=frob")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        env.app
            .post("/sync?_action=resync")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
}
