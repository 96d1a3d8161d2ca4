//! Lanes: a change reaches every outbound mapping's queues, a row meant for one mapping only
//! that mapping's, and a row for a lane nobody declared waits in the outbox, tried less and
//! less often, without holding back the others.

use std::time::Duration;

use idm_sync::outbound::broker::{BrokerConnection, BrokerSettings};
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

#[tokio::test]
async fn a_row_for_an_undeclared_lane_waits_without_holding_back_the_others() {
    let app = TestApp::spawn().await;
    let topology = TestTopology::with_lanes(4, ["org-a"]);
    let (stop, status) = spawn_relay(app.db.pool.clone(), settings(amqp_url(), &topology));
    let waiting = app.create_user("waiting").await;
    let waiting = waiting["_id"].as_str().unwrap();
    wait_until(
        "the create published",
        Duration::from_secs(20),
        async || backlog(&app).await == 0,
    )
    .await;
    // A mapping no role has declared a lane for yet.
    enqueue_for(&app, waiting, "org-later").await;
    let other = app.create_user("flowing").await;
    let other = other["_id"].as_str().unwrap();
    wait_until(
        "the other change published past the waiting row",
        Duration::from_secs(20),
        async || backlog(&app).await == 1,
    )
    .await;
    // When it is tried next, and how far ahead that is (seconds).
    let deferred = async || -> (Option<chrono::DateTime<chrono::Utc>>, Option<f64>) {
        sqlx::query_as(
            "SELECT retry_at, extract(epoch FROM retry_at - now())::float8 FROM outbox
             WHERE mapping = 'org-later' AND published_at IS NULL",
        )
        .fetch_optional(&app.db.pool)
        .await
        .unwrap()
        .unwrap_or((None, None))
    };
    // Tried again after 1 s, then after as long as it has waited: within seconds its next
    // try is more than 2 s ahead (a relay retrying it every pass, or every second, never
    // gets there), and nothing touches it before then.
    wait_until(
        "the row deferred by more than 2 s",
        Duration::from_secs(20),
        async || deferred().await.1.is_some_and(|ahead| ahead > 2.0),
    )
    .await;
    let (next_try, _) = deferred().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(deferred().await.0, next_try, "not tried before its time");
    assert!(status.is_up(), "an unroutable row does not end the session");

    // A role that knows the mapping declares its lane: the row lands there within its delay.
    let later = TestTopology(topology.0.clone().with_lanes(["org-later"]));
    let broker = BrokerConnection::open(&BrokerSettings {
        url: amqp_url(),
        topology: later.0.clone(),
        connection_name: "idm-sync lanes test".into(),
    })
    .await
    .unwrap();
    broker.close().await;
    wait_until(
        "the deferred row published",
        Duration::from_secs(30),
        async || backlog(&app).await == 0,
    )
    .await;
    drop(stop);
    let got = events(&later, "org-later").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1.object_id, waiting);
    assert_eq!(got[0].1.operation, "sync");
    let mut in_a: Vec<(String, String)> = events(&topology, "org-a")
        .await
        .into_iter()
        .map(|(_, e)| (e.object_id, e.operation))
        .collect();
    in_a.sort();
    let mut creates = vec![
        (waiting.to_owned(), "create".to_owned()),
        (other.to_owned(), "create".to_owned()),
    ];
    creates.sort();
    assert_eq!(in_a, creates, "org-a had both creates, not the sync");
}
