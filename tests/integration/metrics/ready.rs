//! Readiness: 200 with every component up, 503 naming the broker when it is unreachable; the
//! ping stays the liveness check; `--metrics-listen` serves the same endpoints.

use std::time::Duration;

use idm_sync::ops::{self, Ops, listener::OpsListener};
use idm_sync::outbound::broker::BrokerStatus;
use idm_sync::outbound::relay::{Relay, RelaySettings};
use idm_sync::outbound::topology::Topology;
use serde_json::Value;

use super::{broker, env, root, scrape};
use crate::helpers::TestApp;
use crate::worker::wait_until;

async fn ready(root: &str, path: &str) -> (u16, Value) {
    let res = reqwest::get(format!("{root}{path}")).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn ready_when_the_database_and_both_broker_connections_are_up() {
    let env = env(3).await;
    let worker = env.spawn_worker();
    let root = root(&env.app);
    wait_until("relay and worker connected", async || {
        ready(&root, "/openidm/health/ready").await.0 == 200
    })
    .await;
    let (status, body) = ready(&root, "/openidm/health/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "READY");
    for c in ["database", "relay", "worker", "salesforce"] {
        assert_eq!(body["components"][c]["status"], "UP", "{c}: {body}");
    }
    assert_eq!(ready(&root, "/ready").await.0, 200);
    worker.stop().await;
}

#[tokio::test]
async fn not_ready_naming_the_broker_when_it_is_unreachable() {
    let ops = Ops::isolated();
    let app = TestApp::spawn_with_ops(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf"),
        ops.clone(),
    )
    .await;
    let topology = Topology::new("unreachable", 1);
    let status = BrokerStatus::default();
    ops.readiness.broker("relay", status.clone());
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let relay = Relay::new(
        app.db.pool.clone(),
        RelaySettings {
            broker: broker("amqp://guest:guest@127.0.0.1:1/%2f", &topology, "relay"),
            batch_size: 10,
            poll_interval: Duration::from_millis(100),
            retention: Duration::from_secs(3600),
            confirm_timeout: idm_sync::outbound::relay::DEFAULT_CONFIRM_TIMEOUT,
        },
        status,
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay.run_until(async move {
        let _ = rx.await;
    }));
    let root = root(&app);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for path in ["/openidm/health/ready", "/ready"] {
        let (code, body) = ready(&root, path).await;
        assert_eq!(code, 503, "{body}");
        assert_eq!(body["state"], "NOT_READY");
        assert_eq!(body["failing"], serde_json::json!(["relay"]), "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("relay"),
            "{body}"
        );
        assert_eq!(body["components"]["database"]["status"], "UP");
        assert_eq!(body["components"]["relay"]["status"], "DOWN");
    }
    // Liveness is another question: the process is alive and Postgres answers.
    let ping = reqwest::get(app.url("/info/ping")).await.unwrap();
    assert_eq!(ping.status(), 200);
    let _ = tx.send(());
}

#[tokio::test]
async fn the_ping_says_when_its_relay_cannot_reach_the_broker() {
    let status = BrokerStatus::default();
    let app = TestApp::spawn_with_broker_status(status.clone()).await;
    let ping = |app: &TestApp| {
        let url = app.url("/info/ping");
        async move {
            let res = reqwest::get(url).await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let down = ping(&app).await;
    assert_eq!(down["state"], "ACTIVE_READY");
    assert!(
        down["shortDesc"]
            .as_str()
            .unwrap()
            .contains("message broker is unreachable"),
        "{down}"
    );
    status.set(true);
    assert_eq!(ping(&app).await["shortDesc"], "OpenIDM ready");
}

#[tokio::test]
async fn metrics_listen_serves_metrics_and_readiness_alone() {
    let db = crate::helpers::TestDb::new().await;
    let ops = Ops::isolated();
    let listener = OpsListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        listener.serve(ops::router(ops, db.pool.clone()), async move {
            let _ = rx.await;
        }),
    );
    let s = scrape(&root).await;
    assert_eq!(s.get("idm_outbox_backlog", &[]), Some(0.0));
    assert_eq!(s.get("idm_relay_events_published_total", &[]), Some(0.0));
    let (code, body) = ready(&root, "/openidm/health/ready").await;
    assert_eq!(code, 200, "{body}");
    // Nothing else lives there.
    let other = reqwest::get(format!("{root}/openidm/managed/user"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let _ = tx.send(());
    server.await.unwrap();
}
