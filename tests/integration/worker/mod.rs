//! The outbound worker end to end: REST write → outbox → relay → RabbitMQ → worker → the
//! in-process emulator, with real Postgres and a per-test broker name prefix.

mod scenarios;

use std::sync::Arc;
use std::time::Duration;

use idm_sync::emulator::{EmulatorHandle, RunningEmulator};
use idm_sync::mapping::SyncConfig;
use idm_sync::outbound::broker::{BrokerSettings, BrokerStatus};
use idm_sync::outbound::relay::{Relay, RelaySettings};
use idm_sync::outbound::sync::SyncEngine;
use idm_sync::outbound::topology::Topology;
use idm_sync::outbound::worker::{OUTBOUND_MAPPING, Worker, WorkerSettings};
use idm_sync::salesforce::SalesforceClient;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::helpers::{TestTopology, amqp_url};
use crate::recon::support::{conf_dir, shipped_sync};
use crate::salesforce::support as sf;

pub struct Env {
    pub org: RunningEmulator,
    pub app: TestApp,
    pub topology: TestTopology,
    pub sf: SalesforceClient,
    pub profile: String,
    _relay: tokio::sync::oneshot::Sender<()>,
}

pub struct RunningWorker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    /// Graceful stop: finishes the batch in hand, then the task ends.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the worker stops within 10 s of the shutdown signal")
            .expect("the worker task ends cleanly");
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn env(users: usize) -> Env {
    let org = sf::start_org(users, false).await;
    let conf = conf_dir(org.base_url(), &shipped_sync());
    let app = TestApp::spawn_with_conf(conf).await;
    let topology = TestTopology::new(4);
    let relay = Relay::new(
        app.db.pool.clone(),
        RelaySettings {
            broker: broker(&topology, "relay"),
            batch_size: 200,
            poll_interval: Duration::from_millis(100),
            retention: Duration::from_secs(3600),
        },
        BrokerStatus::default(),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay.run_until(async move {
        let _ = rx.await;
    }));
    let sf = sf::client(org.base_url());
    let profile = org.handle().profile_id("Standard User").unwrap();
    Env {
        org,
        app,
        topology,
        sf,
        profile,
        _relay: tx,
    }
}

fn broker(topology: &Topology, name: &str) -> BrokerSettings {
    BrokerSettings {
        url: amqp_url(),
        topology: topology.clone(),
        connection_name: format!("idm-sync {name} test"),
    }
}

impl Env {
    pub fn handle(&self) -> EmulatorHandle {
        self.org.handle()
    }

    pub fn settings(&self) -> WorkerSettings {
        let mut s = WorkerSettings::new(broker(&self.topology, "worker"));
        s.retry_min_delay = Duration::from_millis(50);
        s.retry_max_delay = Duration::from_millis(400);
        s.max_attempts = 6;
        s.rate_limit_pause = Duration::from_millis(200);
        s.rate_limit_max_pause = Duration::from_millis(400);
        s
    }

    pub fn spawn_worker(&self) -> RunningWorker {
        self.spawn_worker_with(self.settings())
    }

    pub fn spawn_worker_with(&self, settings: WorkerSettings) -> RunningWorker {
        let sync = SyncConfig::load(&conf_dir(self.org.base_url(), &shipped_sync())).unwrap();
        let engine = SyncEngine::new(
            self.app.db.pool.clone(),
            Arc::new(sync),
            OUTBOUND_MAPPING,
            self.sf.clone(),
        )
        .unwrap();
        let worker = Worker::new(engine, settings, BrokerStatus::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until(async move {
            let _ = rx.await;
        }));
        RunningWorker {
            stop: Some(tx),
            task,
        }
    }

    pub fn user_body(&self, user_name: &str) -> Value {
        json!({
            "userName": user_name,
            "givenName": "Barbara",
            "sn": "Jensen",
            "mail": format!("{}@example.com", user_name.split('@').next().unwrap_or("x")),
            "profileId": self.profile,
        })
    }

    /// Creates a managed user over REST; returns its id.
    pub async fn create(&self, user_name: &str) -> String {
        let res = self
            .app
            .post("/managed/user?_action=create")
            .json(&self.user_body(user_name))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        let v: Value = res.json().await.unwrap();
        v["_id"].as_str().unwrap().to_owned()
    }

    pub async fn patch(&self, id: &str, field: &str, value: Value) {
        let res = self
            .app
            .patch(&format!("/managed/user/{id}"))
            .json(&json!([{"operation": "replace", "field": field, "value": value}]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
    }

    /// The Salesforce id linked to a managed user, if any.
    pub async fn linked(&self, id: &str) -> Option<String> {
        sqlx::query_scalar("SELECT first_id FROM links WHERE second_id = $1")
            .bind(id)
            .fetch_optional(&self.app.db.pool)
            .await
            .unwrap()
    }

    /// The link's synced revision of a managed user.
    pub async fn synced_rev(&self, id: &str) -> Option<i64> {
        sqlx::query_scalar::<_, Option<i64>>("SELECT synced_rev FROM links WHERE second_id = $1")
            .bind(id)
            .fetch_optional(&self.app.db.pool)
            .await
            .unwrap()
            .flatten()
    }

    pub async fn rev(&self, id: &str) -> i64 {
        sqlx::query_scalar("SELECT rev FROM managed_objects WHERE id = $1")
            .bind(id)
            .fetch_one(&self.app.db.pool)
            .await
            .unwrap()
    }

    /// Waits until the user's link is at its current revision; returns the Salesforce user.
    pub async fn wait_synced(&self, id: &str) -> Value {
        let rev = self.rev(id).await;
        wait_until(&format!("user {id} synced at {rev}"), async || {
            self.synced_rev(id).await.is_some_and(|s| s >= rev)
        })
        .await;
        let sf_id = self.linked(id).await.unwrap();
        self.handle().user(&sf_id).unwrap()
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.app.db.pool)
            .await
            .unwrap()
    }

    pub async fn failures(&self, filter: &str) -> Value {
        let res = self
            .app
            .get(&format!(
                "/sync/failures?_queryFilter={}",
                urlencode(filter)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
