//! Lanes: a change reaches every outbound mapping's queues, a row meant for one mapping only
//! that mapping's.

use std::time::Duration;

use idm_sync::outbound::message::ChangeEvent;
use idm_sync::outbound::topology::Topology;
use idm_sync::repo::outbox;

use super::{backlog, drain_lane, settings, spawn_relay, wait_until};
use crate::helpers::{TestApp, TestTopology, amqp_url};

/// The events of lane `lane`, with the partition each came from.
async fn events(topology: &Topology, lane: &str) -> Vec<(u16, ChangeEvent)> {
    drain_lane(topology, lane)
        .await
        .into_iter()
        .flat_map(|(p, messages)| messages.into_iter().map(move |(e, _)| (p, e)))
        .collect()
}

/// Queues a `sync` of managed user `id` for mapping `mapping` alone.
async fn enqueue_for(app: &TestApp, id: &str, mapping: &str) {
    let mut tx = app.db.pool.begin().await.unwrap();
    assert!(
        outbox::enqueue_sync(&mut tx, "user", id, None, Some(mapping))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_change_reaches_every_lane_on_its_partition() {
    let app = TestApp::spawn().await;
    let topology = TestTopology::with_lanes(4, ["org-a", "org-b"]);
    let (stop, _) = spawn_relay(app.db.pool.clone(), settings(amqp_url(), &topology));
    let user = app.create_user("everywhere").await;
    let id = user["_id"].as_str().unwrap();
    wait_until(
        "the change published",
        Duration::from_secs(20),
        async || backlog(&app).await == 0,
    )
    .await;
    drop(stop);
    let partition = topology.partition_for(id);
    for lane in ["org-a", "org-b"] {
        let got = events(&topology, lane).await;
        assert_eq!(got.len(), 1, "{lane}: {got:?}");
        let (p, event) = &got[0];
        assert_eq!((*p, event.object_id.as_str()), (partition, id), "{lane}");
        assert_eq!(event.operation, "create");
    }
}

#[tokio::test]
async fn a_row_for_one_mapping_reaches_its_lane_only() {
    let app = TestApp::spawn().await;
    let topology = TestTopology::with_lanes(4, ["org-a", "org-b"]);
    // The user's create counts as published already: only the targeted row is left.
    let user = app.create_user("targeted").await;
    let id = user["_id"].as_str().unwrap();
    sqlx::query("UPDATE outbox SET published_at = now()")
        .execute(&app.db.pool)
        .await
        .unwrap();
    enqueue_for(&app, id, "org-b").await;
    let (stop, _) = spawn_relay(app.db.pool.clone(), settings(amqp_url(), &topology));
    wait_until("the row published", Duration::from_secs(20), async || {
        backlog(&app).await == 0
    })
    .await;
    drop(stop);
    let got = events(&topology, "org-b").await;
    assert_eq!(got.len(), 1, "{got:?}");
    let (p, event) = &got[0];
    assert_eq!(
        (*p, event.object_id.as_str()),
        (topology.partition_for(id), id)
    );
    assert_eq!(event.operation, "sync");
    assert!(events(&topology, "org-a").await.is_empty(), "not org-a's");
}
