//! The outbox relay against a real RabbitMQ: every committed change is published, to its
//! user's partition, confirmed before it is marked; an outage or an unroutable message loses
//! nothing. Each test uses its own name prefix and deletes its exchanges and queues.

mod lanes;
mod proxy;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use idm_sync::outbound::broker::{BrokerSettings, BrokerStatus};
use idm_sync::outbound::message::ChangeEvent;
use idm_sync::outbound::relay::{Relay, RelaySettings};
use idm_sync::outbound::topology::Topology;
use idm_sync::repo::outbox;
use lapin::options::{BasicConsumeOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::json;

use self::proxy::Proxy;
use crate::helpers::{TestApp, TestTopology, amqp_url, user_body};

fn topology() -> TestTopology {
    TestTopology::new(4)
}

fn settings(url: String, topology: &Topology) -> RelaySettings {
    RelaySettings {
        broker: BrokerSettings {
            url,
            topology: topology.clone(),
            connection_name: "idm-sync relay test".into(),
        },
        batch_size: 50,
        poll_interval: Duration::from_millis(200),
        retention: Duration::from_secs(3600),
        confirm_timeout: idm_sync::outbound::relay::DEFAULT_CONFIRM_TIMEOUT,
    }
}

/// A relay running in the background until the returned sender is dropped.
fn spawn_relay(
    pool: sqlx::PgPool,
    settings: RelaySettings,
) -> (tokio::sync::oneshot::Sender<()>, BrokerStatus) {
    let status = BrokerStatus::default();
    let relay = Relay::new(pool, settings, status.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay.run_until(async move {
        let _ = rx.await;
    }));
    (tx, status)
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message now in the partition queues of the topology's one lane, by partition.
async fn drain(topology: &Topology) -> HashMap<u16, Vec<(ChangeEvent, lapin::BasicProperties)>> {
    let [lane] = &topology.lanes[..] else {
        panic!("one lane expected: {:?}", topology.lanes)
    };
    drain_lane(topology, lane).await
}

/// Every message now in lane `lane`'s partition queues, by partition.
async fn drain_lane(
    topology: &Topology,
    lane: &str,
) -> HashMap<u16, Vec<(ChangeEvent, lapin::BasicProperties)>> {
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut out = HashMap::new();
    // basic.get is refused on single-active-consumer quorum queues: consume until idle.
    for p in 0..topology.partitions {
        let mut consumer = channel
            .basic_consume(
                topology.queue(lane, p).into(),
                format!("drain-{p}").into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut messages = Vec::new();
        while let Ok(Some(delivery)) =
            tokio::time::timeout(Duration::from_millis(500), consumer.next()).await
        {
            let delivery = delivery.unwrap();
            let event: ChangeEvent = serde_json::from_slice(&delivery.data).unwrap();
            messages.push((event, delivery.properties.clone()));
        }
        out.insert(p, messages);
    }
    let _ = conn.close(200, "bye".into()).await;
    out
}

async fn backlog(app: &TestApp) -> i64 {
    outbox::backlog(&app.db.pool).await.unwrap()
}

async fn outbox_ids(app: &TestApp) -> Vec<(i64, String, i64)> {
    sqlx::query_as("SELECT id, object_id, rev FROM outbox ORDER BY id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_change_is_published_once_to_its_partition() {
    let app = TestApp::spawn().await;
    let topology = topology();
    let (stop, status) = spawn_relay(app.db.pool.clone(), settings(amqp_url(), &topology));
    for i in 0..40 {
        let user = app.create_user(&format!("pub{i}")).await;
        if i % 4 == 0 {
            let id = user["_id"].as_str().unwrap();
            let res = app
                .patch(&format!("/managed/user/{id}"))
                .json(&json!([{"operation": "replace", "field": "/sn", "value": "Changed"}]))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    }
    wait_until("the outbox to drain", Duration::from_secs(20), async || {
        backlog(&app).await == 0
    })
    .await;
    assert!(status.is_up());
    drop(stop);

    let rows = outbox_ids(&app).await;
    assert_eq!(rows.len(), 50);
    let published = drain(&topology).await;
    let mut seen = HashSet::new();
    for (partition, messages) in &published {
        for (event, props) in messages {
            assert_eq!(
                topology.partition_for(&event.object_id),
                *partition,
                "routed by object id"
            );
            assert!(
                seen.insert(event.event_id),
                "event {} published twice",
                event.event_id
            );
            assert_eq!(
                props.message_id().as_ref().map(|m| m.to_string()),
                Some(event.event_id.to_string())
            );
            assert_eq!(props.delivery_mode(), &Some(2), "persistent");
            let version = props
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-schema-version").cloned());
            assert_eq!(version, Some(lapin::types::AMQPValue::LongUInt(1)));
            let row = rows
                .iter()
                .find(|r| r.0 == event.event_id)
                .expect("a message for an outbox row");
            assert_eq!((&row.1, row.2), (&event.object_id, event.rev));
            assert_eq!(event.object_type, "user");
        }
    }
    assert_eq!(seen.len(), 50, "every row published");
    // Updates of one user follow its create on the same queue, in order.
    for messages in published.values() {
        let mut last_rev: HashMap<&str, i64> = HashMap::new();
        for (event, _) in messages {
            let previous = last_rev.insert(&event.object_id, event.rev);
            assert!(previous.is_none_or(|p| p < event.rev), "in order per user");
        }
    }
}

#[tokio::test]
async fn a_broker_outage_loses_nothing() {
    let app = TestApp::spawn().await;
    let topology = topology();
    let broker_addr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start(broker_addr).await;
    let (stop, status) = spawn_relay(app.db.pool.clone(), settings(proxy.amqp_url(), &topology));
    for i in 0..10 {
        app.create_user(&format!("before{i}")).await;
    }
    wait_until(
        "the first changes to publish",
        Duration::from_secs(20),
        async || backlog(&app).await == 0,
    )
    .await;

    // The broker goes away; writers carry on, changes wait in the outbox.
    proxy.cut();
    wait_until("the relay to notice", Duration::from_secs(20), async || {
        !status.is_up()
    })
    .await;
    for i in 0..25 {
        app.create_user(&format!("during{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        backlog(&app).await,
        25,
        "nothing is marked published while the broker is away"
    );

    proxy.restore();
    wait_until(
        "the backlog to drain after the outage",
        Duration::from_secs(45),
        async || backlog(&app).await == 0,
    )
    .await;
    assert!(status.is_up());
    drop(stop);

    assert_every_change_published(&app, &topology).await;
}

/// Whether another transaction can lock every unpublished row right now (`NOWAIT`: an error
/// when any is locked, as while the relay holds its batch).
/// Every outbox row reached the broker (invariant 1): drains the partition queues.
async fn assert_every_change_published(app: &TestApp, topology: &Topology) {
    let published: HashSet<i64> = drain(topology)
        .await
        .into_values()
        .flatten()
        .map(|(event, _)| event.event_id)
        .collect();
    for (id, object_id, _) in outbox_ids(app).await {
        assert!(
            published.contains(&id),
            "change {id} of {object_id} was lost"
        );
    }
}

async fn unpublished_rows_lockable(app: &TestApp) -> bool {
    let mut tx = app.db.pool.begin().await.unwrap();
    let locked = sqlx::query("SELECT id FROM outbox WHERE published_at IS NULL FOR UPDATE NOWAIT")
        .fetch_all(&mut *tx)
        .await;
    tx.rollback().await.unwrap();
    match locked {
        Ok(_) => true,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => false,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_broker_that_stops_answering_releases_the_batch_within_the_bound() {
    let app = TestApp::spawn().await;
    let topology = topology();
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let bound = Duration::from_secs(2);
    let relay_settings = RelaySettings {
        confirm_timeout: bound,
        ..settings(proxy.amqp_url(), &topology)
    };
    let (stop, status) = spawn_relay(app.db.pool.clone(), relay_settings);
    app.create_user("before").await;
    wait_until(
        "the first change to publish",
        Duration::from_secs(20),
        async || backlog(&app).await == 0,
    )
    .await;

    // The broker stops answering: the relay claims the next changes, publishes them into the
    // silence, and waits for confirms while it holds their rows.
    proxy.stall();
    // Five changes committed together, so that one batch claims them all.
    sqlx::query(
        "INSERT INTO outbox (object_type, object_id, rev, operation)
         SELECT 'user', 'stalled' || g, 1, 'create' FROM generate_series(1, 5) g",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    wait_until(
        "the relay to claim the batch",
        Duration::from_secs(10),
        async || !unpublished_rows_lockable(&app).await,
    )
    .await;
    let claimed = std::time::Instant::now();
    wait_until(
        "the relay to give the batch up",
        bound + Duration::from_secs(5),
        async || unpublished_rows_lockable(&app).await,
    )
    .await;
    let held = claimed.elapsed();
    assert!(held < bound + Duration::from_secs(3), "rows held {held:?}");
    assert_eq!(
        backlog(&app).await,
        5,
        "rolled back: nothing marked published"
    );
    wait_until(
        "the relay to report the broker down",
        Duration::from_secs(5),
        async || !status.is_up(),
    )
    .await;
    // While the broker stays silent the relay keeps trying, and never sits on the rows.
    tokio::time::sleep(bound * 2).await;
    assert!(unpublished_rows_lockable(&app).await);

    proxy.restore();
    wait_until(
        "the backlog to drain once the broker answers",
        Duration::from_secs(45),
        async || backlog(&app).await == 0,
    )
    .await;
    assert!(status.is_up());
    drop(stop);
    assert_every_change_published(&app, &topology).await;
}

#[tokio::test]
async fn an_unroutable_change_stays_in_the_outbox_until_it_can_be_routed() {
    let app = TestApp::spawn().await;
    let topology = topology();
    let (stop, status) = spawn_relay(app.db.pool.clone(), settings(amqp_url(), &topology));
    app.create_user("first").await;
    wait_until(
        "the topology and first change",
        Duration::from_secs(20),
        async || backlog(&app).await == 0,
    )
    .await;

    // Someone deletes partition 0's queue: a change routed there comes back (mandatory).
    let id = (0..)
        .map(|i| format!("lost-{i}"))
        .find(|id| topology.partition_for(id) == 0)
        .unwrap();
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let lane = &topology.lanes[0];
    channel
        .queue_delete(
            topology.queue(lane, 0).into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let res = app
        .put(&format!("/managed/user/{id}"))
        .json(&user_body("lost"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    wait_until(
        "the returned change to be deferred",
        Duration::from_secs(20),
        async || {
            sqlx::query_scalar::<_, bool>(
                "SELECT retry_at IS NOT NULL FROM outbox WHERE object_id = $1",
            )
            .bind(&id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap()
        },
    )
    .await;

    // The relay declares its topology again within its session; the change then lands.
    wait_until(
        "the unroutable change to be published",
        Duration::from_secs(45),
        async || backlog(&app).await == 0,
    )
    .await;
    assert!(
        status.is_up(),
        "an unroutable change does not end the session"
    );
    drop(stop);
    let in_queue: Vec<String> = drain(&topology)
        .await
        .remove(&0)
        .unwrap()
        .into_iter()
        .map(|(event, _)| event.object_id)
        .collect();
    assert!(in_queue.contains(&id), "{in_queue:?}");
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test]
async fn two_relays_share_the_outbox_without_duplicates() {
    let app = TestApp::spawn().await;
    let topology = topology();
    sqlx::query(
        "INSERT INTO outbox (object_type, object_id, rev, operation)
         SELECT 'user', 'u' || g, g, 'create' FROM generate_series(1, 400) g",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (stop_a, _) = spawn_relay(app.db.pool.clone(), settings(amqp_url(), &topology));
    let (stop_b, _) = spawn_relay(app.db.another_pool().await, settings(amqp_url(), &topology));
    wait_until(
        "both relays to drain the outbox",
        Duration::from_secs(30),
        async || backlog(&app).await == 0,
    )
    .await;
    drop((stop_a, stop_b));
    let ids: Vec<i64> = drain(&topology)
        .await
        .into_values()
        .flatten()
        .map(|(e, _)| e.event_id)
        .collect();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 400, "each row published exactly once");
    assert_eq!(unique.len(), 400);
}

#[tokio::test]
async fn published_rows_are_purged_after_the_retention_period() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.create_user(&format!("old{i}")).await;
    }
    app.create_user("unpublished").await;
    sqlx::query(
        "UPDATE outbox SET published_at = now() - interval '2 hours'
         WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 3)",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let relay = Relay::new(
        app.db.pool.clone(),
        settings(amqp_url(), &topology()),
        BrokerStatus::default(),
    );
    assert_eq!(relay.purge().await.unwrap(), 3);
    assert_eq!(
        app.outbox_count().await,
        1,
        "unpublished rows are never purged"
    );
}
