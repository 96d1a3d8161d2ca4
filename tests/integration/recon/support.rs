//! A running app whose conf/ points at an emulator of its own, and helpers to inspect the
//! repository after a recon.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use idm_sync::managed::ManagedObjects;
use idm_sync::mapping::SyncConfig;
use idm_sync::recon::{ReconEngine, ReconRequest, ReconSettings};
use idm_sync::salesforce::{Record, SalesforceClient};
use serde_json::{Value, json};
use sf_emulator::RunningEmulator;

use crate::helpers::TestApp;
use crate::salesforce::support as sf;

pub const MAPPING: &str = "systemSalesforceUser_managedUser";

pub use crate::helpers::TempDir as ConfDir;

pub struct Env {
    /// Kept alive for the test's length.
    pub _org: RunningEmulator,
    pub app: TestApp,
    pub conf: ConfDir,
    /// A client of the same org, for changes made "in Salesforce".
    pub sf: SalesforceClient,
}

/// A conf/ directory: the shipped files, `sync` as sync.json, the provisioner's loginUrl
/// pointed at `base`.
pub fn conf_dir(base: &str, sync: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let dir =
        std::env::temp_dir().join(format!("idm-sync-recon-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["managed.json", "authentication.json"] {
        std::fs::copy(shipped.join(f), dir.join(f)).unwrap();
    }
    std::fs::copy(sync, dir.join("sync.json")).unwrap();
    let mut prov: Value = serde_json::from_str(
        &std::fs::read_to_string(shipped.join("provisioner.openicf-salesforce.json")).unwrap(),
    )
    .unwrap();
    prov["configurationProperties"]["loginUrl"] = json!(format!("{base}/services/oauth2/token"));
    prov["enabled"] = json!(true);
    std::fs::write(
        dir.join("provisioner.openicf-salesforce.json"),
        serde_json::to_string_pretty(&prov).unwrap(),
    )
    .unwrap();
    dir
}

pub fn shipped_sync() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/sync.json")
}

/// The shipped sync.json changed by `edit`, in a temporary file of its own ([`env_with`]
/// copies it; the caller removes it).
pub fn shipped_sync_with(edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut sync: Value =
        serde_json::from_str(&std::fs::read_to_string(shipped_sync()).unwrap()).unwrap();
    edit(&mut sync);
    let path = std::env::temp_dir().join(format!(
        "idm-sync-sync-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, sync.to_string()).unwrap();
    path
}

/// Runs a recon of the inbound mapping to its end with `engine`; its summary.
pub async fn run(engine: &ReconEngine) -> Value {
    engine
        .run(ReconRequest {
            mapping: MAPPING.into(),
            ..ReconRequest::default()
        })
        .await
        .unwrap()
}

/// A recon engine over `conf`'s mappings, the database of `pool` and the connector `sf`.
pub fn engine_over(
    conf: &Path,
    pool: &sqlx::PgPool,
    sf: &SalesforceClient,
    settings: ReconSettings,
) -> ReconEngine {
    let loaded = idm_sync::config::Conf::load(conf).unwrap();
    let managed = ManagedObjects::new(pool.clone(), Arc::new(loaded.managed.clone()));
    let sync = SyncConfig::load(conf).unwrap();
    ReconEngine::new(
        managed,
        Arc::new(sync),
        idm_sync::connectors::Connectors::from_clients([sf.clone()]),
        settings,
    )
}

pub async fn env(users: usize) -> Env {
    env_with(users, &shipped_sync()).await
}

pub async fn env_with(users: usize, sync: &Path) -> Env {
    env_with_conf(users, sync, |_| {}).await
}

/// As [`env_with`], with `audit` as the conf directory's audit.json.
pub async fn env_with_audit(users: usize, audit: &Value) -> Env {
    let text = audit.to_string();
    env_with_conf(users, &shipped_sync(), move |dir| {
        std::fs::write(dir.join("audit.json"), text).unwrap()
    })
    .await
}

async fn env_with_conf(users: usize, sync: &Path, edit: impl FnOnce(&Path)) -> Env {
    let org = sf::start_org(users, false).await;
    let dir = conf_dir(org.base_url(), sync);
    edit(&dir);
    let conf = ConfDir(dir);
    let app = TestApp::spawn_with_conf(conf.0.clone()).await;
    let sf = sf::client(org.base_url());
    Env {
        _org: org,
        app,
        conf,
        sf,
    }
}

impl Env {
    /// Runs a recon to its end over REST and returns its summary.
    pub async fn recon(&self, query: &str) -> Value {
        self.recon_with_body(query, None).await
    }

    pub async fn recon_with_body(&self, query: &str, body: Option<Value>) -> Value {
        let mut req = self.app.post(&format!(
            "/recon?_action=recon&mapping={MAPPING}&waitForCompletion=true{query}"
        ));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        let started: Value = res.json().await.unwrap();
        self.summary(started["_id"].as_str().unwrap()).await
    }

    pub async fn summary(&self, id: &str) -> Value {
        let res = self.app.get(&format!("/recon/{id}")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// An engine of its own over the app's database (for tests that abort a run's task).
    pub fn engine(&self) -> ReconEngine {
        self.engine_with(ReconSettings::default())
    }

    pub fn engine_with(&self, settings: ReconSettings) -> ReconEngine {
        engine_over(&self.conf, &self.app.db.pool, &self.sf, settings)
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.app.db.pool)
            .await
            .unwrap()
    }

    pub async fn users(&self) -> i64 {
        self.scalar("SELECT count(*) FROM managed_objects WHERE object_type = 'user'")
            .await
    }

    pub async fn links(&self) -> i64 {
        self.scalar("SELECT count(*) FROM links").await
    }

    pub async fn outbox(&self) -> i64 {
        self.app.outbox_count().await
    }

    pub async fn max_rev(&self) -> i64 {
        self.scalar("SELECT COALESCE(max(rev), 0) FROM managed_objects")
            .await
    }

    /// Every Salesforce user (Id, Username, Email), in Id order.
    pub async fn sf_users(&self) -> Vec<Record> {
        let pages: Vec<_> = self
            .sf
            .query("SELECT Id, Username, Email FROM User ORDER BY Id")
            .try_collect()
            .await
            .unwrap();
        pages.into_iter().flat_map(|p| p.records).collect()
    }

    /// The ordinary (non-autoproc) Salesforce users.
    pub async fn people(&self) -> Vec<Record> {
        self.sf_users()
            .await
            .into_iter()
            .filter(|r| !r["Email"].as_str().unwrap().starts_with("autoproc"))
            .collect()
    }

    /// The managed user linked to a Salesforce id.
    pub async fn linked_user(&self, sf_id: &str) -> Value {
        let id: String = sqlx::query_scalar("SELECT second_id FROM links WHERE first_id = $1")
            .bind(sf_id)
            .fetch_one(&self.app.db.pool)
            .await
            .unwrap();
        let res = self
            .app
            .get(&format!("/managed/user/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// `reconById` of one Salesforce id, waited for; the run's summary.
    pub async fn recon_by_id(&self, id: &str) -> Value {
        let res = self
            .app
            .post(&format!(
                "/recon?_action=reconById&mapping={MAPPING}&id={id}&waitForCompletion=true"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let started: Value = res.json().await.unwrap();
        self.summary(started["_id"].as_str().unwrap()).await
    }

    /// Polls a run until it leaves ACTIVE.
    pub async fn wait_done(&self, id: &str) -> Value {
        for _ in 0..300 {
            let s = self.summary(id).await;
            if s["state"] != "ACTIVE" {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {id} did not finish");
    }
}

pub fn record(v: Value) -> Record {
    v.as_object().unwrap().clone()
}

/// `situationSummary[s]`.
pub fn sit(summary: &Value, s: &str) -> u64 {
    summary["situationSummary"][s].as_u64().unwrap()
}

pub fn target(summary: &Value, k: &str) -> u64 {
    summary["progress"]["target"][k].as_u64().unwrap()
}
