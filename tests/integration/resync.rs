//! `POST /openidm/sync?_action=resync`: every linked user whose Salesforce copy lags its current
//! revision is enqueued again, through the outbox like any change.

use crate::recon::support::{MAPPING, env};

const OUTBOUND: &str = "managedUser_systemSalesforceUser";

#[tokio::test]
async fn resync_enqueues_exactly_the_lagging_users() {
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
    let before = env.outbox().await;
    let body: serde_json::Value = resync(OUTBOUND).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["resynced"], 3, "{body}");
    let mut queued: Vec<String> = sqlx::query_scalar(
        "SELECT object_id FROM outbox WHERE operation = 'sync' ORDER BY object_id",
    )
    .fetch_all(&env.app.db.pool)
    .await
    .unwrap();
    let mut expected = lagging.clone();
    expected.sort();
    queued.sort();
    assert_eq!(queued, expected);
    assert_eq!(env.outbox().await, before + 3);

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
