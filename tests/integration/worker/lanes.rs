//! Lanes: the workers of each outbound mapping consume that mapping's queues alone and divide
//! them among themselves only, also when they share a process and a pool.

use idm_sync::audit_config::AuditConfig;
use idm_sync::outbound::worker::OUTBOUND_MAPPING;
use idm_sync::repo::workers::WorkerMember;
use serde_json::json;

use super::{Env, env_over, wait_until};
use crate::helpers::{TestTopology, amqp_url};
use crate::recon::support::shipped_sync_with;

/// A second outbound mapping: the shipped one's copy, with links of its own.
const OTHER: &str = "managedUser_systemSalesforceUserB";

async fn two_mappings() -> Env {
    let sync = shipped_sync_with(|sync| {
        let mappings = sync["mappings"].as_array_mut().unwrap();
        let mut other = mappings
            .iter()
            .find(|m| m["name"] == OUTBOUND_MAPPING)
            .unwrap()
            .clone();
        other["name"] = json!(OTHER);
        other.as_object_mut().unwrap().remove("links");
        mappings.push(other);
    });
    let topology = TestTopology::with_lanes(4, [OUTBOUND_MAPPING, OTHER]);
    let env = env_over(0, &sync, topology, amqp_url()).await;
    let _ = std::fs::remove_file(&sync);
    env
}

/// (worker id, partitions) of each live member of `lane`.
async fn split(env: &Env, lane: &str) -> Vec<(String, Vec<i32>)> {
    let members: Vec<WorkerMember> = env.lane_members(lane).await;
    assert!(members.iter().all(|m| m.lane == lane), "{members:?}");
    members
        .into_iter()
        .map(|m| (m.worker_id, m.partitions))
        .collect()
}

#[tokio::test]
async fn the_workers_of_two_mappings_each_hold_every_partition_of_their_own_lane() {
    let env = two_mappings().await;
    let all: Vec<i32> = (0..4).collect();
    let a = env.spawn_mapping_worker(OUTBOUND_MAPPING, env.settings(), AuditConfig::default());
    let b = env.spawn_mapping_worker(OTHER, env.settings(), AuditConfig::default());
    wait_until("each worker holding all of its lane", async || {
        split(&env, OUTBOUND_MAPPING).await == [(a.id.clone(), all.clone())]
            && split(&env, OTHER).await == [(b.id.clone(), all.clone())]
    })
    .await;
    // Each queue of each lane has one consumer, its own lane's worker.
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    for queue in env.topology.queues() {
        let q = channel
            .queue_declare(
                queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..lapin::options::QueueDeclareOptions::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(q.consumer_count(), 1, "{queue}");
    }
    conn.close(200, "bye".into()).await.unwrap();

    // A second worker of the first mapping shares that lane only.
    let a2 = env.spawn_mapping_worker(OUTBOUND_MAPPING, env.settings(), AuditConfig::default());
    wait_until("the first lane split in two", async || {
        let first = split(&env, OUTBOUND_MAPPING).await;
        let mut held: Vec<i32> = first.iter().flat_map(|(_, p)| p.clone()).collect();
        held.sort_unstable();
        first.len() == 2 && first.iter().all(|(_, p)| p.len() == 2) && held == all
    })
    .await;
    assert_eq!(
        split(&env, OTHER).await,
        [(b.id.clone(), all.clone())],
        "the other lane's worker keeps its partitions"
    );
    for w in [a, a2, b] {
        w.stop().await;
    }
    assert!(split(&env, OUTBOUND_MAPPING).await.is_empty());
    assert!(split(&env, OTHER).await.is_empty());
}

/// Publishes `body` to the dead-letter exchange as the broker would when it dead-letters a
/// message of `queue`.
async fn dead_letter_from(env: &Env, queue: &str, body: &[u8]) {
    use lapin::types::{AMQPValue, FieldTable, ShortString};
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    // The relay declares the topology in its own time: a letter published before the queue
    // is bound would be dropped.
    env.topology.declare(&ch).await.unwrap();
    let mut headers = FieldTable::default();
    for (name, value) in [
        ("x-first-death-reason", "delivery_limit"),
        ("x-first-death-queue", queue),
    ] {
        headers.insert(ShortString::from(name), AMQPValue::LongString(value.into()));
    }
    ch.basic_publish(
        env.topology.dead_letter_exchange().into(),
        "".into(),
        lapin::options::BasicPublishOptions::default(),
        body,
        lapin::BasicProperties::default().with_headers(headers),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    conn.close(200, "done".into()).await.unwrap();
}

#[tokio::test]
async fn a_dead_letter_is_a_failure_of_the_mapping_whose_lane_it_died_in() {
    let env = two_mappings().await;
    // Only the first mapping's worker runs: it reads the dead letters of every lane.
    let worker = env.spawn_mapping_worker(OUTBOUND_MAPPING, env.settings(), AuditConfig::default());
    // A user whose only event died in the other mapping's queue (written without an outbox row).
    let id: String = sqlx::query_scalar(
        "INSERT INTO managed_objects (object_type, id, rev, body)
         VALUES ('user', gen_random_uuid()::text, nextval('managed_object_rev_seq'), $1) RETURNING id",
    )
    .bind(env.user_body("lane.dlq@idm-sync.test"))
    .fetch_one(&env.app.db.pool)
    .await
    .unwrap();
    let rev = env.rev(&id).await;
    let event = serde_json::to_vec(&json!({
        "eventId": 1, "objectType": "user", "objectId": id, "rev": rev,
        "operation": "update", "timestamp": "2026-11-27T00:00:00Z"
    }))
    .unwrap();
    let queue = env.topology.queue(OTHER, env.topology.partition_for(&id));
    dead_letter_from(&env, &queue, &event).await;
    wait_until("the dead letter listed as a failure", async || {
        env.failures("true").await["resultCount"] == 1
    })
    .await;
    let failure = env.failures("true").await["result"][0].clone();
    assert_eq!(failure["mapping"], OTHER, "{failure}");
    assert_eq!(failure["errorCode"], "DEAD_LETTERED", "{failure}");

    // Its retry is queued for that mapping's lane alone.
    let res = env
        .app
        .post(&format!(
            "/sync/failures/{}?_action=retry",
            failure["_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let mapping: Option<String> = sqlx::query_scalar(
        "SELECT mapping FROM outbox WHERE object_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(&id)
    .fetch_one(&env.app.db.pool)
    .await
    .unwrap();
    assert_eq!(mapping.as_deref(), Some(OTHER));
    worker.stop().await;
}
