//! Dead-lettered change events become sync failures (when their user is still behind) that
//! retry like any other; events of users in step and unreadable messages are dropped.

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};

use super::{env, wait_until};
use crate::helpers::queued_messages;

/// Publishes `body` to the topology's dead-letter exchange, as the broker would dead-letter it.
async fn dead_letter(env: &super::Env, body: &[u8]) {
    let conn = Connection::connect(&env.amqp_url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from("x-first-death-reason"),
        AMQPValue::LongString("delivery_limit".into()),
    );
    ch.basic_publish(
        env.topology.dead_letter_exchange().into(),
        "".into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default().with_headers(headers),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    conn.close(200, "done".into()).await.unwrap();
}

fn event(id: &str, rev: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "eventId": 1, "objectType": "user", "objectId": id, "rev": rev,
        "operation": "update", "timestamp": "2026-11-27T00:00:00Z"
    }))
    .unwrap()
}

#[tokio::test]
async fn a_dead_lettered_change_is_a_sync_failure_that_retries() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    // In step: synced through the partition queue, then a stale copy dead-lettered.
    let synced = env.create("synced.dlq@idm-sync.test").await;
    env.wait_synced(&synced).await;
    let rev = env.rev(&synced).await;
    dead_letter(&env, &event(&synced, rev)).await;
    dead_letter(&env, b"not a change event").await;
    // Behind: a user whose only event was dead-lettered (written here without an outbox row).
    let body = env.user_body("lost.dlq@idm-sync.test");
    let lost: String = sqlx::query_scalar(
        "INSERT INTO managed_objects (object_type, id, rev, body)
         VALUES ('user', gen_random_uuid()::text, nextval('managed_object_rev_seq'), $1) RETURNING id",
    )
    .bind(&body)
    .fetch_one(&env.app.db.pool)
    .await
    .unwrap();
    let lost_rev = env.rev(&lost).await;
    dead_letter(&env, &event(&lost, lost_rev)).await;

    wait_until("the dead-lettered change listed as a failure", async || {
        env.failures("true").await["resultCount"] == 1
    })
    .await;
    let failures = env.failures(&format!("objectId eq \"{lost}\"")).await;
    let f: &Value = &failures["result"][0];
    assert_eq!(f["errorCode"], "DEAD_LETTERED", "{f}");
    assert_eq!(f["revision"], json!(lost_rev));
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("delivery_limit"), "{message}");
    wait_until("the dead-letter queue drained", async || {
        queued_messages(&env.amqp_url, &[env.topology.dead_letter_queue()]).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        env.failures("true").await["resultCount"],
        1,
        "the in-step user and the unreadable message left no failure"
    );

    let res = env
        .app
        .post(&format!(
            "/sync/failures/{}?_action=retry",
            f["_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let sf = env.wait_synced(&lost).await;
    assert_eq!(sf["Username"], "lost.dlq@idm-sync.test");
    wait_until("the failure cleared", async || {
        env.failures("true").await["resultCount"] == 0
    })
    .await;
    worker.stop().await;
}
