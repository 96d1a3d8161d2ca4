//! The outbound worker end to end: REST write → outbox → relay → RabbitMQ → worker → the
//! in-process emulator, with real Postgres and a per-test broker name prefix.

mod broker_node;
mod cut_off;
mod dead_letters;
mod enable_sync;
mod entitlements;
mod hooks;
mod lanes;
mod outbound_recon;
mod scaling;
mod scenarios;
mod two_orgs;

use std::sync::Arc;
use std::time::Duration;

use idm_sync::audit_config::AuditConfig;
use idm_sync::mapping::SyncConfig;
use idm_sync::outbound::broker::{BrokerSettings, BrokerStatus};
use idm_sync::outbound::relay::{Relay, RelaySettings};
use idm_sync::outbound::sync::SyncEngine;
use idm_sync::outbound::topology::Topology;
use idm_sync::outbound::worker::{OUTBOUND_MAPPING, Worker, WorkerSettings, WorkerStats};
use idm_sync::repo::workers::WorkerMember;
use idm_sync::salesforce::SalesforceClient;
use serde_json::{Value, json};
use sf_emulator::{EmulatorHandle, RunningEmulator};

use crate::helpers::TestApp;
use crate::helpers::{TestTopology, amqp_url};
use crate::recon::support::{ConfDir, conf_dir, shipped_sync};
use crate::salesforce::support as sf;

pub struct Env {
    pub org: RunningEmulator,
    pub app: TestApp,
    pub topology: TestTopology,
    pub sf: SalesforceClient,
    pub profile: String,
    /// The broker the relay and the workers use.
    pub amqp_url: String,
    /// The configuration the workers load (removed when the test ends).
    pub conf: ConfDir,
    _relay: tokio::sync::oneshot::Sender<()>,
}

/// The lease the tests' workers use: short, so a dead worker's partitions move quickly.
pub const TEST_LEASE: Duration = Duration::from_secs(3);

pub struct RunningWorker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
    /// Its id in `outbound_workers`.
    pub id: String,
    pub stats: WorkerStats,
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
    env_with(users, 4, amqp_url()).await
}

/// An environment with `partitions` partition queues on the broker at `amqp_url`.
pub async fn env_with(users: usize, partitions: u16, amqp_url: String) -> Env {
    let topology = TestTopology::new(partitions);
    env_over(users, &shipped_sync(), topology, amqp_url).await
}

/// An environment whose workers load `sync` (a sync.json), whose relay publishes to the lanes
/// of `topology`.
pub async fn env_over(
    users: usize,
    sync: &std::path::Path,
    topology: TestTopology,
    amqp_url: String,
) -> Env {
    let org = sf::start_org(users, false).await;
    let conf = ConfDir(conf_dir(org.base_url(), sync));
    env_in(org, conf, topology, amqp_url).await
}

/// An environment over `org` and `conf` (a configuration directory written for it), whose relay
/// publishes to the lanes of `topology`.
pub async fn env_in(
    org: RunningEmulator,
    conf: ConfDir,
    topology: TestTopology,
    amqp_url: String,
) -> Env {
    let app = TestApp::spawn_with_conf(conf.0.clone()).await;
    let relay = Relay::new(
        app.db.pool.clone(),
        RelaySettings {
            broker: broker(&amqp_url, &topology, "relay"),
            batch_size: 200,
            poll_interval: Duration::from_millis(100),
            retention: Duration::from_secs(3600),
            confirm_timeout: idm_sync::outbound::relay::DEFAULT_CONFIRM_TIMEOUT,
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
        amqp_url,
        conf,
        _relay: tx,
    }
}

fn broker(url: &str, topology: &Topology, name: &str) -> BrokerSettings {
    BrokerSettings {
        url: url.to_owned(),
        topology: topology.clone(),
        connection_name: format!("idm-sync {name} test"),
    }
}

impl Env {
    pub fn handle(&self) -> EmulatorHandle {
        self.org.handle()
    }

    pub fn settings(&self) -> WorkerSettings {
        let mut s = WorkerSettings::new(broker(&self.amqp_url, &self.topology, "worker"));
        s.retry_min_delay = Duration::from_millis(50);
        s.retry_max_delay = Duration::from_millis(400);
        s.max_attempts = 6;
        s.rate_limit_pause = Duration::from_millis(200);
        s.rate_limit_max_pause = Duration::from_millis(400);
        s.lease_ttl = TEST_LEASE;
        s
    }

    pub fn spawn_worker(&self) -> RunningWorker {
        self.spawn_worker_with(self.settings())
    }

    pub fn spawn_worker_with(&self, settings: WorkerSettings) -> RunningWorker {
        self.spawn_worker_audited(settings, AuditConfig::default())
    }

    /// A worker writing the `sync` audit topic as `audit` says.
    pub fn spawn_worker_audited(
        &self,
        settings: WorkerSettings,
        audit: AuditConfig,
    ) -> RunningWorker {
        self.spawn_mapping_worker(OUTBOUND_MAPPING, settings, audit)
    }

    /// A worker applying mapping `mapping` (consuming its lane).
    pub fn spawn_mapping_worker(
        &self,
        mapping: &str,
        settings: WorkerSettings,
        audit: AuditConfig,
    ) -> RunningWorker {
        self.spawn_engine_worker(mapping, settings, |e| e.with_audit(audit))
    }

    /// A worker applying mapping `mapping` with an engine `tune` adjusts.
    pub fn spawn_engine_worker(
        &self,
        mapping: &str,
        settings: WorkerSettings,
        tune: impl FnOnce(SyncEngine) -> SyncEngine,
    ) -> RunningWorker {
        let sync = SyncConfig::load(&self.conf.0).unwrap();
        let engine = tune(
            SyncEngine::new(
                self.app.db.pool.clone(),
                Arc::new(sync),
                mapping,
                self.sf.clone(),
            )
            .unwrap(),
        );
        let worker = Worker::new(
            engine,
            self.app.db.pool.clone(),
            idm_sync::metrics::Metrics::process(),
            settings,
            BrokerStatus::default(),
        );
        let id = worker.id().to_owned();
        let stats = worker.stats();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until(async move {
            let _ = rx.await;
        }));
        RunningWorker {
            stop: Some(tx),
            task,
            id,
            stats,
        }
    }

    /// The live members of the shipped outbound mapping's workers (within the tests' lease).
    pub async fn members(&self) -> Vec<WorkerMember> {
        self.lane_members(OUTBOUND_MAPPING).await
    }

    /// The live members of lane `lane`'s workers (within the tests' lease).
    pub async fn lane_members(&self, lane: &str) -> Vec<WorkerMember> {
        idm_sync::repo::workers::live_within(&self.app.db.pool, lane, TEST_LEASE)
            .await
            .unwrap()
    }

    /// Waits until the live members are exactly `ids` and hold every partition between them,
    /// each partition once and each member a fair share; returns the members.
    pub async fn wait_split(&self, ids: &[&str]) -> Vec<WorkerMember> {
        let mut want: Vec<&str> = ids.to_vec();
        want.sort_unstable();
        let all: Vec<i32> = (0..i32::from(self.topology.partitions)).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let members = self.members().await;
            let mut held: Vec<i32> = members.iter().flat_map(|m| m.partitions.clone()).collect();
            held.sort_unstable();
            let names: Vec<&str> = members.iter().map(|m| m.worker_id.as_str()).collect();
            // Split: every partition held, and by then rebalanced (a newcomer may briefly
            // hold none while the others still cover everything).
            let fair = all.len() / want.len().max(1);
            if names == want && held == all && members.iter().all(|m| m.partitions.len() >= fair) {
                return members;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {want:?} to split the partitions; last seen {members:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn user_body(&self, user_name: &str) -> Value {
        crate::helpers::sf_user_body(user_name, &self.profile)
    }

    /// Creates a managed user over REST; returns its id.
    pub async fn create(&self, user_name: &str) -> String {
        crate::helpers::create_managed(&self.app, &self.user_body(user_name)).await
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

    /// Deletes a managed user over REST.
    pub async fn delete(&self, id: &str) {
        let res = self
            .app
            .delete(&format!("/managed/user/{id}"))
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
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
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

/// Every managed user equals, in the emulator, the mapping of its latest revision.
pub async fn assert_converged(env: &Env, ids: &[String]) {
    for id in ids {
        let sf = env.wait_synced(id).await;
        let res = env
            .app
            .get(&format!("/managed/user/{id}"))
            .send()
            .await
            .unwrap();
        let m: Value = res.json().await.unwrap();
        assert_eq!(sf["LastName"], m["sn"], "{id}");
        assert_eq!(sf["FirstName"], m["givenName"], "{id}");
        assert_eq!(sf["Email"], m["mail"], "{id}");
        let given = m["givenName"].as_str().unwrap();
        assert_eq!(
            sf["Alias"],
            json!(given.chars().take(8).collect::<String>())
        );
        assert_eq!(sf["Username"], m["userName"]);
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
