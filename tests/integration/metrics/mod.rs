//! `/metrics`, readiness and the worker's pause while Salesforce needs re-authorization: the
//! whole path (REST → outbox → relay → RabbitMQ → worker → emulator) with a metrics registry
//! and readiness checks of the test's own, as `all` wires them for the process.

mod exposition;
mod http;
mod ready;
mod reauth;
mod roles;
mod scrape;

use std::sync::Arc;
use std::time::Duration;

use idm_sync::mapping::SyncConfig;
use idm_sync::ops::Ops;
use idm_sync::outbound::broker::{BrokerSettings, BrokerStatus};
use idm_sync::outbound::relay::{Relay, RelaySettings};
use idm_sync::outbound::sync::SyncEngine;
use idm_sync::outbound::topology::Topology;
use idm_sync::outbound::worker::{OUTBOUND_MAPPING, Worker, WorkerSettings};
use idm_sync::salesforce::SalesforceClient;
use serde_json::{Value, json};
use sf_emulator::RunningEmulator;

use crate::helpers::{TestApp, TestTopology, amqp_url};
use crate::recon::support::{ConfDir, conf_dir, shipped_sync};
use crate::salesforce::support as sf;
use crate::worker::wait_until;

pub struct Env {
    pub org: RunningEmulator,
    pub app: TestApp,
    pub ops: Ops,
    pub topology: TestTopology,
    /// The worker's client: observed into `ops`, its refresh tokens stored in the test database.
    pub sf: SalesforceClient,
    pub profile: String,
    _relay: tokio::sync::oneshot::Sender<()>,
    conf: ConfDir,
}

/// A worker task, aborted if the test ends without stopping it.
pub struct RunningWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        tokio::time::timeout(Duration::from_secs(10), &mut task)
            .await
            .expect("the worker stops within 10 s")
            .expect("the worker task ends cleanly");
    }
}

pub fn broker(url: &str, topology: &Topology, name: &str) -> BrokerSettings {
    BrokerSettings {
        url: url.to_owned(),
        topology: topology.clone(),
        connection_name: format!("idm-sync {name} metrics test"),
    }
}

/// An emulator, `serve` with a registry of its own, and a relay counting into it.
pub async fn env(users: usize) -> Env {
    let org = sf::start_org(users, false).await;
    let conf = ConfDir(conf_dir(org.base_url(), &shipped_sync()));
    let ops = Ops::isolated();
    let app = TestApp::spawn_with_ops(conf.0.clone(), ops.clone()).await;
    let topology = TestTopology::new(2);
    let status = BrokerStatus::default();
    ops.readiness.broker("relay", status.clone());
    let relay = Relay::new(
        app.db.pool.clone(),
        RelaySettings {
            broker: broker(&amqp_url(), &topology, "relay"),
            batch_size: 200,
            poll_interval: Duration::from_millis(100),
            retention: Duration::from_secs(3600),
            confirm_timeout: idm_sync::outbound::relay::DEFAULT_CONFIRM_TIMEOUT,
        },
        status,
    )
    .with_metrics(ops.metrics.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay.run_until(async move {
        let _ = rx.await;
    }));
    let sf = SalesforceClient::observed(
        sf::config(org.base_url()),
        crate::helpers::token_store(&app.db.pool),
        ops.metrics.salesforce_observer("salesforce"),
    )
    .unwrap();
    let profile = org.handle().profile_id("Standard User").unwrap();
    Env {
        org,
        app,
        ops,
        topology,
        sf,
        profile,
        _relay: tx,
        conf,
    }
}

impl Env {
    /// A worker on the test's registry and readiness, polling for a new token every 200 ms.
    pub fn spawn_worker(&self) -> RunningWorker {
        let mut settings = WorkerSettings::new(broker(&amqp_url(), &self.topology, "worker"));
        settings.retry_min_delay = Duration::from_millis(50);
        settings.retry_max_delay = Duration::from_millis(400);
        settings.authorization_poll = Duration::from_millis(200);
        let sync = SyncConfig::load(&self.conf).unwrap();
        let engine = SyncEngine::new(
            self.app.db.pool.clone(),
            Arc::new(sync),
            OUTBOUND_MAPPING,
            self.sf.clone(),
        )
        .unwrap()
        .with_metrics(self.ops.metrics.clone());
        let status = BrokerStatus::default();
        self.ops.readiness.broker("worker", status.clone());
        let worker = Worker::new(
            engine,
            self.app.db.pool.clone(),
            self.ops.metrics.clone(),
            settings,
            status,
        );
        self.ops
            .readiness
            .worker_pause(worker.system_name(), worker.pause_state());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until(async move {
            let _ = rx.await;
        }));
        RunningWorker { stop, task }
    }

    pub fn user_body(&self, user_name: &str) -> Value {
        crate::helpers::sf_user_body(user_name, &self.profile)
    }

    /// Creates a managed user over REST; returns its id.
    pub async fn create(&self, user_name: &str) -> String {
        crate::helpers::create_managed(&self.app, &self.user_body(user_name)).await
    }

    pub async fn set_sn(&self, id: &str, sn: &str) {
        let res = self
            .app
            .patch(&format!("/managed/user/{id}"))
            .json(&json!([{"operation": "replace", "field": "/sn", "value": sn}]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.app.db.pool)
            .await
            .unwrap()
    }

    /// The Salesforce user linked to `id`, once the link is at the user's current revision.
    pub async fn wait_synced(&self, id: &str) -> Value {
        let rev = self
            .scalar(&format!(
                "SELECT rev FROM managed_objects WHERE id = '{id}'"
            ))
            .await;
        wait_until(&format!("user {id} synced at {rev}"), async || {
            self.scalar(&format!(
                "SELECT coalesce(max(synced_rev), -1) FROM links WHERE second_id = '{id}'"
            ))
            .await
                >= rev
        })
        .await;
        let sf_id: String = sqlx::query_scalar("SELECT first_id FROM links WHERE second_id = $1")
            .bind(id)
            .fetch_one(&self.app.db.pool)
            .await
            .unwrap();
        self.org.handle().user(&sf_id).unwrap()
    }
}

/// `GET <root>/metrics` without credentials, checked line by line.
pub async fn scrape(root: &str) -> exposition::Scrape {
    let text = scrape_text(root).await;
    exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The text of `GET <root>/metrics`, after checking its status and content type.
pub async fn scrape_text(root: &str) -> String {
    let res = reqwest::get(format!("{root}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    res.text().await.unwrap()
}

/// The server root (the API base without `/openidm`).
pub fn root(app: &TestApp) -> String {
    app.base.trim_end_matches("/openidm").to_owned()
}
