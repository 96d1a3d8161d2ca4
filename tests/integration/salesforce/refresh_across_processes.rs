//! Refresh single-flight across processes (issue 13): every process sharing the database
//! refreshes under one Postgres lock, re-reads the stored tokens first, and uses an access token
//! another process stored instead of refreshing again. With refresh-token rotation on, a second
//! refresh would present a rotated-out token: `invalid_grant`, and the family revoked.
//!
//! The focused tests stand two "processes" up as two clients, each with its own pool and
//! token store on one database; the last one runs serve, three workers and a scheduler as
//! separate processes of the built binary.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use idm_sync::salesforce::{SalesforceClient, Secret};
use serde_json::json;
use sf_emulator::{Emulator, EmulatorConfig, RunningEmulator};

use super::support::*;
use crate::helpers::{ADMIN, TestDb, TestTopology, amqp_url, free_port};
use crate::recon::support::{ConfDir, conf_dir, shipped_sync};

async fn org(rotate: bool, max_uses: Option<u64>) -> RunningEmulator {
    Emulator::build(
        EmulatorConfig {
            users: 5,
            rotate_refresh_tokens: rotate,
            access_token_max_uses: max_uses,
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
    .start()
}

/// A client as a separate process would have it: its own pool on the shared database.
async fn process_client(db: &TestDb, base: &str) -> SalesforceClient {
    let pool = db.another_pool().await;
    SalesforceClient::new(config(base), crate::helpers::token_store(&pool)).unwrap()
}

async fn stored_generation(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT generation FROM salesforce_sessions WHERE system_name = 'salesforce'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn two_processes_with_rotation_share_each_refresh() {
    let db = TestDb::new().await;
    let org = org(true, None).await;
    let first = process_client(&db, org.base_url()).await;
    let second = process_client(&db, org.base_url()).await;

    first.limits().await.unwrap();
    // The second starts with the access token the first stored: no token call of its own.
    second.limits().await.unwrap();
    let stats = org.handle().stats();
    assert_eq!((stats.token_calls, stats.invalid_grants), (1, 0));
    assert_eq!(stored_generation(&db).await, 1);

    // Both find their token expired at once, many times: one refresh each time, never a
    // rotated-out refresh token presented.
    for round in 1..=5 {
        org.handle().expire_access_tokens();
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let calls: Vec<_> = (0..8)
            .map(|n| {
                let client = if n % 2 == 0 {
                    first.clone()
                } else {
                    second.clone()
                };
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    client.limits().await
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let stats = org.handle().stats();
        assert_eq!(stats.invalid_grants, 0, "round {round}");
        assert_eq!(stats.token_calls, 1 + round, "one refresh in round {round}");
        assert_eq!(stored_generation(&db).await, 1 + round as i64);
    }
    // The refresh token in the store is the live one: a third process starts with it.
    org.handle().expire_access_tokens();
    let third = process_client(&db, org.base_url()).await;
    third.limits().await.unwrap();
    assert_eq!(org.handle().stats().invalid_grants, 0);
}

#[tokio::test]
async fn a_refresh_waits_for_the_lock_and_then_uses_what_the_holder_stored() {
    let db = TestDb::new().await;
    let org = org(true, None).await;
    let client = process_client(&db, org.base_url()).await;
    client.limits().await.unwrap();
    org.handle().expire_access_tokens();

    // Another process holds the lock, as during its own token call.
    let other = crate::helpers::token_store(&db.another_pool().await);
    let mut held = other
        .lock_refresh("salesforce", Duration::from_secs(30))
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.limits().await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the refresh waits for the lock");
    assert_eq!(org.handle().stats().token_calls, 1);

    // The holder refreshes with the stored refresh token, as a process would, and stores
    // what it got before releasing the lock.
    let stored = held.token().await.unwrap().unwrap();
    let defaults = EmulatorConfig::default();
    let grant: serde_json::Value = crate::helpers::http_builder()
        .build()
        .unwrap()
        .post(format!("{}/services/oauth2/token", org.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", defaults.consumer_key.as_str()),
            ("client_secret", defaults.consumer_secret.as_str()),
            ("refresh_token", stored.refresh_token.expose()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotated = Secret::new(grant["refresh_token"].as_str().unwrap());
    held.save_token(&rotated, None, stored.conf_refresh_token_sha256.as_deref())
        .await
        .unwrap();
    held.save_session(
        &Secret::new(grant["access_token"].as_str().unwrap()),
        grant["instance_url"].as_str().unwrap(),
        &rotated.sha256_hex(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    held.release().await.unwrap();

    waiting.await.unwrap().unwrap();
    let stats = org.handle().stats();
    assert_eq!(
        stats.token_calls, 2,
        "the waiter made no token call of its own"
    );
    assert_eq!(stats.invalid_grants, 0);
}

#[tokio::test]
async fn a_stored_session_is_used_only_with_the_refresh_token_it_came_from() {
    let db = TestDb::new().await;
    let org = org(false, None).await;
    let store = crate::helpers::token_store(&db.pool);
    let conf_token = Secret::new(EmulatorConfig::default().refresh_token);
    let save = async |access: &str, refresh: &Secret| {
        let mut lock = store
            .lock_refresh("salesforce", Duration::from_secs(5))
            .await
            .unwrap();
        lock.save_session(
            &Secret::new(access),
            org.base_url(),
            &refresh.sha256_hex(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        lock.release().await.unwrap();
    };

    // Stored under another authorization: not used, this client refreshes.
    save(
        "not-a-token-of-this-org",
        &Secret::new("another-refresh-token"),
    )
    .await;
    let client = process_client(&db, org.base_url()).await;
    client.limits().await.unwrap();
    let stats = org.handle().stats();
    assert_eq!(stats.token_calls, 1);
    assert_eq!(stats.calls_of(LIMITS), 1, "no call with the other token");

    // Stored under this refresh token but dead (revoked, expired): used, refused once,
    // then refreshed, and the call goes through.
    save("dead-token-of-this-authorization", &conf_token).await;
    let client = process_client(&db, org.base_url()).await;
    org.handle().reset_stats();
    client.limits().await.unwrap();
    let stats = org.handle().stats();
    assert_eq!(stats.token_calls, 1);
    assert_eq!(stats.calls_of(LIMITS), 2, "a 401, then the retry");
}

#[tokio::test]
async fn tokens_that_expire_every_few_calls_under_load_never_get_invalid_grant() {
    let db = TestDb::new().await;
    // Each token serves 20 calls, shared by three processes of four busy tasks each.
    let org = org(true, Some(20)).await;
    let clients = [
        process_client(&db, org.base_url()).await,
        process_client(&db, org.base_url()).await,
        process_client(&db, org.base_url()).await,
    ];
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let client = clients[n % clients.len()].clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    client.limits().await?;
                }
                Ok::<_, idm_sync::salesforce::SalesforceError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = org.handle().stats();
    assert_eq!(stats.invalid_grants, 0);
    assert!(
        stats.token_calls >= 120 / 20,
        "tokens expired every few calls: {} token calls",
        stats.token_calls
    );
}

/// An `idm-sync` role as a child process of this test; killed when dropped.
struct Role {
    name: &'static str,
    child: Child,
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The roles' shared environment: one database, one broker prefix, one conf directory.
struct Deployment<'a> {
    db: &'a TestDb,
    conf: &'a std::path::Path,
    topology: &'a TestTopology,
}

impl Deployment<'_> {
    fn spawn(&self, name: &'static str, args: &[&str], env: &[(&str, &str)]) -> Role {
        let output = || {
            if std::env::var("TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let child = Command::new(env!("CARGO_BIN_EXE_idm-sync"))
            .args(args)
            .arg("--conf")
            .arg(self.conf)
            .env("DATABASE_URL", &self.db.url)
            .env("AMQP_URL", amqp_url())
            .env("IDM_BROKER_PREFIX", &self.topology.prefix)
            .env("IDM_PARTITIONS", self.topology.partitions.to_string())
            .env("IDM_WORKER_LEASE_SECS", "3")
            .env("IDM_SECRETS_KEY", crate::helpers::test_secrets_key_base64())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(output())
            .stderr(output())
            .spawn()
            .unwrap_or_else(|e| panic!("start idm-sync {name}: {e}"));
        Role { name, child }
    }
}

/// Waits up to two minutes (five processes on a shared machine) for `check`.
async fn eventually(what: &str, roles: &mut [&mut Role], mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !check().await {
        for role in roles.iter_mut() {
            if let Ok(Some(status)) = role.child.try_wait() {
                panic!(
                    "idm-sync {} exited ({status}) while waiting for {what}",
                    role.name
                );
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// Issue 13's reproduction, as separate processes: serve (with the relay), three workers and a
/// scheduler share one database, against an org with refresh-token rotation on whose access
/// tokens expire after a few calls (and after a few seconds). The scheduler reconciles the org
/// in; then managed users are created and edited over REST. No refresh grant is refused, and
/// every edit reaches Salesforce.
#[tokio::test]
async fn serve_three_workers_and_a_scheduler_refresh_one_at_a_time() {
    let org = Emulator::build(
        EmulatorConfig {
            users: 10,
            rotate_refresh_tokens: true,
            access_token_lifetime: Duration::from_secs(3),
            access_token_max_uses: Some(10),
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
    .start();
    let handle = org.handle();
    // Slower calls, token calls included: refreshes overlap more.
    handle.update_faults(&sf_emulator::FaultUpdate {
        latency_ms: Some(40),
        ..Default::default()
    });
    let db = TestDb::new().await;
    let conf = ConfDir(conf_dir(org.base_url(), &shipped_sync()));
    // Three recons, the first a few seconds from now (once the roles are up), 2 s apart.
    let start = chrono::Utc::now() + chrono::Duration::seconds(6);
    let schedule = json!({
        "enabled": true, "persisted": true, "concurrentExecution": false,
        "type": "simple", "repeatInterval": 2000, "repeatCount": 2,
        "startTime": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "invokeService": "sync",
        "invokeContext": {"action": "reconcile", "mapping": "systemSalesforceUser_managedUser"}
    });
    std::fs::write(conf.0.join("schedule-recon.json"), schedule.to_string()).unwrap();
    let topology = TestTopology::new(6);
    let deployment = Deployment {
        db: &db,
        conf: &conf.0,
        topology: &topology,
    };
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = deployment.spawn("serve", &["serve"], &[("IDM_LISTEN", &listen)]);
    let mut workers: Vec<Role> = (0..3)
        .map(|_| deployment.spawn("worker", &["worker"], &[]))
        .collect();
    let mut scheduler = deployment.spawn("scheduler", &["scheduler"], &[]);
    let base = format!("http://{listen}/openidm");
    let http = crate::helpers::http_builder().build().unwrap();
    let admin = |req: reqwest::RequestBuilder| {
        req.header("X-OpenIDM-Username", ADMIN.0)
            .header("X-OpenIDM-Password", ADMIN.1)
    };
    {
        let [w1, w2, w3] = &mut workers[..] else {
            unreachable!()
        };
        let mut roles = [&mut serve, &mut scheduler, w1, w2, w3];
        eventually(
            "serve answering and three workers sharing the partitions",
            &mut roles,
            async || {
                let ping = admin(http.get(format!("{base}/info/ping"))).send().await;
                let members = idm_sync::repo::workers::live_within(
                    &db.pool,
                    idm_sync::outbound::worker::OUTBOUND_MAPPING,
                    Duration::from_secs(3),
                )
                .await
                .unwrap();
                ping.is_ok_and(|r| r.status() == 200) && members.len() == 3
            },
        )
        .await;

        // The scheduler's recons bring the org's users in.
        eventually("the scheduled recons", &mut roles, async || {
            chrono::Utc::now() > start + chrono::Duration::seconds(5)
                && scalar(
                    &db,
                    "SELECT count(*) FROM recon_runs WHERE state = 'SUCCESS'",
                )
                .await
                    >= 1
                && scalar(
                    &db,
                    "SELECT count(*) FROM recon_runs WHERE state = 'ACTIVE'",
                )
                .await
                    == 0
        })
        .await;
    }
    let reconciled = scalar(
        &db,
        "SELECT count(*) FROM managed_objects WHERE object_type = 'user'",
    )
    .await;
    assert!(reconciled > 0, "recon created the org's users");

    // Creates, then rounds of edits, over REST. Before each burst every process's token dies
    // at once, so the workers (and the scheduler, were it to fire) find theirs expired together;
    // within a burst tokens keep expiring every 10 calls and every 3 seconds.
    let profile = handle.profile_id("Standard User").unwrap();
    let mut ids = Vec::new();
    let rounds = ["Created", "Edited", "Again", "Third", "Last"];
    for round in rounds {
        handle.expire_access_tokens();
        for n in 0..30 {
            let res = if round == "Created" {
                let name = format!("rotating{n}@idm-sync.test");
                admin(http.post(format!("{base}/managed/user?_action=create")))
                    .json(&crate::helpers::sf_user_body(&name, &profile))
                    .send()
                    .await
                    .unwrap()
            } else {
                let id = &ids[n];
                let edit = json!([{"operation": "replace", "field": "/sn", "value": format!("{round}{n}")}]);
                admin(http.patch(format!("{base}/managed/user/{id}")))
                    .json(&edit)
                    .send()
                    .await
                    .unwrap()
            };
            assert!(res.status().is_success(), "{:?}", res.text().await);
            if round == "Created" {
                let created: serde_json::Value = res.json().await.unwrap();
                ids.push(created["_id"].as_str().unwrap().to_owned());
            }
        }
        let [w1, w2, w3] = &mut workers[..] else {
            unreachable!()
        };
        let mut roles = [&mut serve, &mut scheduler, w1, w2, w3];
        eventually(&format!("{round} in Salesforce"), &mut roles, async || {
            // Stops early on a failure or a refused grant: the assertions below say which.
            in_step(&db).await == ids.len() as i64
                || scalar(&db, "SELECT count(*) FROM sync_failures").await > 0
                || handle.stats().invalid_grants > 0
        })
        .await;
    }
    let stats = handle.stats();
    assert_eq!(stats.invalid_grants, 0, "no refresh grant refused");
    let failures: Vec<(String, String)> =
        sqlx::query_as("SELECT object_id, message FROM sync_failures")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    for (n, id) in ids.iter().enumerate() {
        let sf_id: String = sqlx::query_scalar("SELECT first_id FROM links WHERE second_id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let user = handle.user(&sf_id).unwrap();
        assert_eq!(user["LastName"], json!(format!("Last{n}")), "{id}");
        assert_eq!(
            user["Username"],
            json!(format!("rotating{n}@idm-sync.test"))
        );
    }
    assert!(
        stats.token_calls >= rounds.len() as u64,
        "a refresh after each expiry at least: {} token calls",
        stats.token_calls
    );
    assert_eq!(
        scalar(&db, "SELECT generation FROM salesforce_sessions").await,
        stats.token_calls as i64,
        "every token call stored its access token for the other processes"
    );
    drop(workers);
    drop((serve, scheduler));
}

/// The REST-created users whose link is at their latest revision.
async fn in_step(db: &TestDb) -> i64 {
    scalar(
        db,
        "SELECT count(*) FROM managed_objects m JOIN links l ON l.second_id = m.id \
         WHERE m.object_type = 'user' AND l.synced_rev >= m.rev \
           AND m.body->>'userName' LIKE 'rotating%'",
    )
    .await
}
