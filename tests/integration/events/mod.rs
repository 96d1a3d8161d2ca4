//! Salesforce change events applied to managed users: the subscriber against the emulator's
//! Pub/Sub API (real gRPC), real Postgres, the inbound mapping as shipped. Changes are made
//! "as an administrator in Salesforce" (the emulator's admin routes: another commitUser than
//! the integration user) unless a test makes them through the connector itself.

mod position;
mod process;

use std::time::Duration;

use idm_sync::config::{ChangeEventsConfig, Conf};
use idm_sync::events::{Subscriber, SubscriberSettings};
use idm_sync::metrics::Metrics;
use idm_sync::recon::{ReconEngine, ReconSettings};
use idm_sync::salesforce::SalesforceClient;
use serde_json::{Value, json};
use sf_emulator::{ChangeType, RunningEmulator};

use crate::helpers::TestApp;
use crate::recon::support::{ConfDir, conf_dir, engine_over, shipped_sync};
use crate::salesforce::support as sf;
use crate::worker::wait_until;

pub struct Env {
    pub org: RunningEmulator,
    pub app: TestApp,
    pub conf: ConfDir,
    pub sf: SalesforceClient,
}

/// An org of `users` (at least two: the integration user, and the admin whose edits are
/// "made in Salesforce"), idm-sync's conf with change events enabled against its Pub/Sub API.
pub async fn env(users: usize) -> Env {
    let org = sf::start_org(users, false).await;
    let dir = conf_dir(org.base_url(), &shipped_sync());
    let events = json!({"enabled": true, "endpoint": org.pubsub_url(), "batchSize": 50});
    std::fs::write(
        dir.join(ChangeEventsConfig::file_name("salesforce")),
        events.to_string(),
    )
    .unwrap();
    let conf = ConfDir(dir);
    let app = TestApp::spawn_with_conf(conf.0.clone()).await;
    let sf = sf::client(org.base_url());
    Env { org, app, conf, sf }
}

/// A subscriber task, aborted (as a crash would end it) if not stopped.
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Graceful: the lease is given up.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the subscriber stops within 10 s")
            .unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn fast() -> SubscriberSettings {
    SubscriberSettings {
        lease_ttl: Duration::from_secs(3),
        linger: Duration::from_millis(20),
        retry_min_delay: Duration::from_millis(100),
        retry_max_delay: Duration::from_millis(500),
    }
}

impl Env {
    pub fn engine(&self) -> ReconEngine {
        engine_over(
            &self.conf,
            &self.app.db.pool,
            &self.sf,
            ReconSettings::default(),
        )
    }

    /// Starts a subscriber as `holder`, counting into `metrics`.
    pub fn subscribe(&self, holder: &str, metrics: &Metrics) -> Running {
        let conf = Conf::load(&self.conf).unwrap();
        let config = conf.change_events[0].clone();
        let subscriber = Subscriber::new(
            config,
            self.engine(),
            self.app.db.pool.clone(),
            holder.to_owned(),
            metrics.clone(),
            fast(),
        )
        .unwrap();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(subscriber.run_until(async move {
            let _ = rx.await;
        }));
        Running {
            stop: Some(stop),
            task,
        }
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.app.db.pool)
            .await
            .unwrap()
    }

    pub async fn text(&self, sql: &str) -> Option<String> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&self.app.db.pool)
            .await
            .unwrap()
            .flatten()
    }

    /// Waits until the subscription is open (a LATEST subscription sees only later changes).
    pub async fn wait_subscribed(&self) {
        wait_until("the subscription open", async || {
            self.text("SELECT state FROM event_subscriptions WHERE connector = 'salesforce'")
                .await
                .as_deref()
                == Some("SUBSCRIBED")
        })
        .await;
    }

    /// The managed user with this userName, once it exists and `check` holds for it.
    pub async fn wait_managed(&self, user_name: &str, check: impl Fn(&Value) -> bool) -> Value {
        let mut found = Value::Null;
        wait_until(
            &format!("managed user {user_name} as expected"),
            async || {
                let filter = format!("userName eq \"{user_name}\"");
                let res = self
                    .app
                    .get("/managed/user")
                    .query(&[("_queryFilter", filter.as_str())])
                    .send()
                    .await
                    .unwrap();
                let body: Value = res.json().await.unwrap();
                match body["result"].as_array().and_then(|r| r.first()) {
                    Some(user) if check(user) => {
                        found = user.clone();
                        true
                    }
                    _ => false,
                }
            },
        )
        .await;
        found
    }

    /// A user created by an administrator in Salesforce; its id.
    pub fn admin_create(&self, user_name: &str) -> String {
        let handle = self.org.handle();
        let body = Value::Object(sf::new_user(&handle, user_name));
        handle.admin_create_user(&body).unwrap()
    }

    pub fn admin_update(&self, id: &str, body: Value) {
        self.org.handle().admin_update_user(id, &body).unwrap();
    }

    /// Recon runs so far (each batch of events is one or more).
    pub async fn runs(&self) -> i64 {
        self.scalar("SELECT count(*) FROM recon_runs").await
    }

    /// REST calls whose path contains `part` (`/query`, `/updated`).
    pub fn calls(&self, part: &str) -> u64 {
        let stats = self.org.handle().stats();
        stats
            .calls
            .iter()
            .filter(|(k, _)| k.contains(part))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn queries(&self) -> u64 {
        self.calls("/query")
    }
}

#[tokio::test]
async fn a_salesforce_side_create_edit_and_deactivation_become_managed_changes() {
    let env = env(3).await;
    let metrics = Metrics::isolated();
    let sub = env.subscribe("replica-a", &metrics);
    env.wait_subscribed().await;
    let polls_before = env.calls("/updated");

    let id = env.admin_create("events.ada@idm-sync.test");
    let user = env
        .wait_managed("events.ada@idm-sync.test", |u| {
            u["accountStatus"] == "active"
        })
        .await;
    assert_eq!(user["sn"], "Tester");
    let rev = user["_rev"].clone();

    env.admin_update(&id, json!({"LastName": "Lovelace"}));
    let user = env
        .wait_managed("events.ada@idm-sync.test", |u| u["sn"] == "Lovelace")
        .await;
    assert_ne!(user["_rev"], rev);

    env.admin_update(&id, json!({"IsActive": false}));
    env.wait_managed("events.ada@idm-sync.test", |u| {
        u["accountStatus"] == "inactive"
    })
    .await;

    // No polling: the changes came as events.
    assert_eq!(env.calls("/updated"), polls_before);
    // The last event's replay id is stored, with its commit time.
    assert_eq!(
        env.scalar("SELECT count(*) FROM event_subscriptions WHERE replay_id IS NOT NULL AND last_commit_at IS NOT NULL")
            .await,
        1
    );
    // The connector's Admin UI page shows the subscription: held, applied, lagging this much.
    let browser = crate::admin::support::Browser::login(&env.app).await;
    let page = browser.get_ok("/admin/connectors/salesforce").await;
    crate::admin::support::assert_well_formed(&page);
    for shown in [
        "id=\"change-events\"",
        "<td id=\"events-enabled\">yes (conf/changeevents-salesforce.json)</td>",
        "<td id=\"events-status\">SUBSCRIBED</td>",
        "<td id=\"events-holder\">replica-a</td>",
        "<td id=\"events-replay\">yes</td>",
    ] {
        assert!(page.contains(shown), "{shown} not in\n{page}");
    }
    let lag = page
        .split("<td id=\"events-lag\">")
        .nth(1)
        .and_then(|r| r.split(" s</td>").next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(lag.is_some_and(|l| (0.0..30.0).contains(&l)), "{lag:?}");

    sub.stop().await;
    assert_eq!(
        env.text("SELECT state FROM event_subscriptions")
            .await
            .as_deref(),
        Some("STOPPED")
    );
    let page = browser.get_ok("/admin/connectors/salesforce").await;
    assert!(page.contains("none (no events process holds it)"), "{page}");
}

#[tokio::test]
async fn idm_syncs_own_writes_cost_no_read_and_no_write() {
    let env = env(3).await;
    let metrics = Metrics::isolated();
    let sub = env.subscribe("replica-a", &metrics);
    env.wait_subscribed().await;
    // An admin change first, so that the subscriber's replay id is known to move.
    let admin = env.admin_create("events.admin@idm-sync.test");
    env.wait_managed("events.admin@idm-sync.test", |_| true)
        .await;
    let (runs, queries) = (env.runs().await, env.queries());
    let replay = env
        .text("SELECT encode(replay_id, 'hex') FROM event_subscriptions")
        .await;

    // The connector's own writes (what the outbound worker does): create and update.
    let record = sf::new_user(&env.org.handle(), "events.own@idm-sync.test");
    let own = env.sf.create(&record).await.unwrap();
    let mut edit = serde_json::Map::new();
    edit.insert("Title".into(), json!("Echo"));
    env.sf.update(&own, &edit).await.unwrap();

    wait_until("both echoes skipped", async || {
        let text = metrics_text(&metrics).await;
        text.contains("idm_events_skipped_total{system=\"salesforce\",reason=\"echo\"} 2")
    })
    .await;
    // The replay id moved past them, and nothing was read or written for them.
    wait_until("the replay id past the echoes", async || {
        env.text("SELECT encode(replay_id, 'hex') FROM event_subscriptions")
            .await
            != replay
    })
    .await;
    assert_eq!(env.runs().await, runs, "no reconciliation for an echo");
    assert_eq!(env.queries(), queries, "no read for an echo");
    assert_eq!(
        env.scalar("SELECT count(*) FROM managed_objects WHERE object_type = 'user'")
            .await,
        1,
        "the connector's own user is not imported by its echo"
    );
    let _ = admin;
    sub.stop().await;
}

async fn metrics_text(metrics: &Metrics) -> String {
    idm_sync::metrics::render(metrics, None).await
}

#[tokio::test]
async fn a_gap_event_is_read_through_rest() {
    // Three users exist in Salesforce that idm-sync never reconciled.
    let env = env(3).await;
    let metrics = Metrics::isolated();
    let sub = env.subscribe("replica-a", &metrics);
    env.wait_subscribed().await;
    let people = sf_people(&env).await;
    let (id, user_name) = people[0].clone();
    let queries = env.queries();
    env.org
        .handle()
        .inject_gap(ChangeType::GapUpdate, &[id.as_str()]);
    env.wait_managed(&user_name, |_| true).await;
    assert!(
        env.queries() > queries,
        "the gap's user was read through REST"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM managed_objects WHERE object_type = 'user'")
            .await,
        1,
        "only the user the gap names"
    );
    sub.stop().await;
}

/// The seeded Salesforce users (not the autoproc one): (Id, Username).
async fn sf_people(env: &Env) -> Vec<(String, String)> {
    sf::id_usernames(&env.sf, true).await
}

#[tokio::test]
async fn an_expired_replay_id_starts_a_full_reconciliation() {
    let env = env(3).await;
    let metrics = Metrics::isolated();
    let sub = env.subscribe("replica-a", &metrics);
    env.wait_subscribed().await;
    let id = env.admin_create("events.first@idm-sync.test");
    env.wait_managed("events.first@idm-sync.test", |_| true)
        .await;
    sub.stop().await;

    // While no subscriber runs, a change is made and then the bus forgets everything: the
    // stored replay id is past retention.
    env.admin_update(&id, json!({"LastName": "Missed"}));
    env.org.handle().set_pubsub_retention(Duration::ZERO);
    let sub = env.subscribe("replica-a", &metrics);
    // The full reconciliation brings the missed change (and the two seeded users) in.
    env.wait_managed("events.first@idm-sync.test", |u| u["sn"] == "Missed")
        .await;
    let people = sf_people(&env).await.len() as i64;
    wait_until("every Salesforce user managed", async || {
        env.scalar("SELECT count(*) FROM managed_objects WHERE object_type = 'user'")
            .await
            == people
    })
    .await;
    let message = env
        .text("SELECT message FROM event_subscriptions")
        .await
        .unwrap_or_default();
    assert!(
        message.contains("no longer retained") && message.contains("reconciliation"),
        "{message}"
    );
    // A full run (no sourceQuery of ids) was started.
    assert!(
        env.scalar("SELECT count(*) FROM recon_runs WHERE parameters::text NOT LIKE '%_id eq%'")
            .await
            >= 1
    );
    sub.stop().await;
}

#[tokio::test]
async fn a_dropped_stream_is_resumed_from_the_stored_replay_id() {
    let env = env(3).await;
    let metrics = Metrics::isolated();
    let sub = env.subscribe("replica-a", &metrics);
    env.wait_subscribed().await;
    let ids: Vec<String> = (0..4)
        .map(|i| env.admin_create(&format!("events.drop{i}@idm-sync.test")))
        .collect();
    for i in 0..4 {
        env.wait_managed(&format!("events.drop{i}@idm-sync.test"), |_| true)
            .await;
    }
    // The stream ends after one more event; the rest are published meanwhile.
    env.org.handle().drop_pubsub_streams(1);
    for (i, id) in ids.iter().enumerate() {
        env.admin_update(id, json!({"LastName": format!("Dropped{i}")}));
    }
    for i in 0..4 {
        let sn = format!("Dropped{i}");
        env.wait_managed(&format!("events.drop{i}@idm-sync.test"), |u| {
            u["sn"] == sn.as_str()
        })
        .await;
    }
    // The subscriber came back by itself.
    env.wait_subscribed().await;
    sub.stop().await;
}
