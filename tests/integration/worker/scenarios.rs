//! Outcomes of implicit sync: what reaches the emulator, what the repository records.

use std::collections::HashMap;
use std::time::Duration;

use idm_sync::salesforce::Record;
use serde_json::{Value, json};
use sf_emulator::FaultUpdate;

use super::{Env, assert_converged, env, urlencode, wait_until};

const PATCH_ONE: &str = "PATCH /services/data/vXX.X/sobjects/{sobject}/{id}";
const CREATE_ONE: &str = "POST /services/data/vXX.X/sobjects/{sobject}";
const COLLECTIONS_POST: &str = "POST /services/data/vXX.X/composite/sobjects";
const COLLECTIONS_PATCH: &str = "PATCH /services/data/vXX.X/composite/sobjects";

fn writes(env: &Env) -> u64 {
    let s = env.handle().stats();
    [PATCH_ONE, CREATE_ONE, COLLECTIONS_POST, COLLECTIONS_PATCH]
        .iter()
        .map(|k| s.calls_of(k))
        .sum()
}

fn record(v: Value) -> Record {
    v.as_object().unwrap().clone()
}

/// A deterministic pseudo-random sequence (no rand dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[tokio::test]
async fn create_then_sn_edit_sends_last_name_alone() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    let id = env.create("bjensen@idm-sync.test").await;
    let sf = env.wait_synced(&id).await;
    assert_eq!(sf["Username"], "bjensen@idm-sync.test");
    assert_eq!(sf["LastName"], "Jensen");
    assert_eq!(sf["Alias"], "Barbara");
    // Defaults on CREATE.
    assert_eq!(sf["LocaleSidKey"], "en_US");
    assert_eq!(sf["LanguageLocaleKey"], "en_US");
    assert_eq!(sf["EmailEncodingKey"], "UTF-8");
    assert_eq!(sf["TimeZoneSidKey"], "America/Los_Angeles");
    assert_eq!(sf["IsActive"], true);
    let snapshot: Value =
        sqlx::query_scalar("SELECT synced_snapshot FROM links WHERE second_id = $1")
            .bind(&id)
            .fetch_one(&env.app.db.pool)
            .await
            .unwrap();
    assert_eq!(snapshot["userName"], "bjensen@idm-sync.test");

    // A change made in Salesforce to another field must survive the sn edit: only LastName
    // is sent.
    let sf_id = env.linked(&id).await.unwrap();
    env.sf
        .update(&sf_id, &record(json!({"FirstName": "ChangedInSalesforce"})))
        .await
        .unwrap();
    env.handle().reset_stats();
    env.patch(&id, "/sn", json!("Jensen-Smith")).await;
    let sf = env.wait_synced(&id).await;
    assert_eq!(sf["LastName"], "Jensen-Smith");
    assert_eq!(
        sf["FirstName"], "ChangedInSalesforce",
        "only the delta is sent"
    );
    let stats = env.handle().stats();
    assert_eq!(stats.calls_of(PATCH_ONE), 1, "{:?}", stats.calls);
    assert_eq!(writes(&env), 1);

    // The audit shows both changes.
    let res = env
        .app
        .get(&format!(
            "/audit/sync?_queryFilter={}",
            urlencode(&format!("sourceObjectId eq \"managed/user/{id}\""))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let audit: Value = res.json().await.unwrap();
    let mut actions: Vec<(String, String, String)> = audit["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["situation"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        vec![
            ("ABSENT".into(), "CREATE".into(), "SUCCESS".into()),
            ("CONFIRMED".into(), "UPDATE".into(), "SUCCESS".into())
        ]
    );
    assert!(audit["result"][0]["latencyMs"].as_i64().unwrap() >= 0);

    // triggerSyncCheck pushes the full state again (repairing a drifted LastName).
    env.sf
        .update(&sf_id, &record(json!({"LastName": "Drifted"})))
        .await
        .unwrap();
    let res = env
        .app
        .post(&format!("/managed/user/{id}?_action=triggerSyncCheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let res = env
        .app
        .post("/managed/user/no-such-user?_action=triggerSyncCheck")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    wait_until("the drift repaired", async || {
        env.handle().user(&sf_id).unwrap()["LastName"] == "Jensen-Smith"
    })
    .await;
    worker.stop().await;
}

#[tokio::test]
async fn the_sync_audit_keeps_the_actions_audit_json_lists() {
    let env = env(0).await;
    let audit = idm_sync::audit_config::AuditConfig::from_json(&json!({
        "eventHandlers": [{"config": {"topics": ["sync"]}}],
        "eventTopics": {"sync": {"filter": {"actions": ["create"]}}}
    }))
    .unwrap();
    let _worker = env.spawn_worker_audited(env.settings(), audit);
    let id = env.create("audited@idm-sync.test").await;
    env.wait_synced(&id).await;
    env.patch(&id, "/sn", json!("Edited")).await;
    let sf = env.wait_synced(&id).await;
    assert_eq!(sf["LastName"], "Edited");
    // Both changes reached Salesforce; only the CREATE is in the audit.
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT body->>'action', body->>'status' FROM sync_audit ORDER BY created_at",
    )
    .fetch_all(&env.app.db.pool)
    .await
    .unwrap();
    assert_eq!(rows, [("CREATE".to_owned(), "SUCCESS".to_owned())]);
}

#[tokio::test]
async fn delete_deactivates_and_a_returning_user_is_reactivated() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    let id = env.create("leaver@idm-sync.test").await;
    env.wait_synced(&id).await;
    let sf_id = env.linked(&id).await.unwrap();
    env.delete(&id).await;
    wait_until("deactivation", async || {
        env.handle().user(&sf_id).unwrap()["IsActive"] == false
    })
    .await;
    wait_until("the link removed", async || env.linked(&id).await.is_none()).await;

    // The same userName again: correlation finds the old account (FOUND → UPDATE).
    let back = env.create("leaver@idm-sync.test").await;
    let sf = env.wait_synced(&back).await;
    assert_eq!(env.linked(&back).await.as_deref(), Some(sf_id.as_str()));
    assert_eq!(sf["IsActive"], true);
    assert_eq!(env.handle().user_count(), 1, "no second Salesforce user");
    worker.stop().await;
}

#[tokio::test]
async fn recon_of_an_unchanged_org_costs_no_outbound_write() {
    let env = env(30).await;
    let worker = env.spawn_worker();
    let res = env
        .app
        .post(
            "/recon?_action=recon&mapping=systemSalesforceUser_managedUser&waitForCompletion=true",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let created = env
        .scalar("SELECT count(*) FROM managed_objects WHERE object_type = 'user'")
        .await;
    assert!(created >= 25, "recon brought the users in: {created}");
    env.handle().reset_stats();
    wait_until("the outbox published", async || {
        env.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .await
            == 0
    })
    .await;
    // A sentinel in every partition proves the worker went past the recon's events.
    let mut sentinels = Vec::new();
    for i in 0..12 {
        sentinels.push(env.create(&format!("sentinel{i}@idm-sync.test")).await);
    }
    for s in &sentinels {
        env.wait_synced(s).await;
    }
    let stats = env.handle().stats();
    assert_eq!(
        stats.calls_of(PATCH_ONE) + stats.calls_of(COLLECTIONS_PATCH),
        0,
        "no update for recon's changes: {:?}",
        stats.calls
    );
    worker.stop().await;
}

#[tokio::test]
async fn random_edits_with_duplicates_converge_on_the_latest_revision() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(env.create(&format!("u{i}@idm-sync.test")).await);
    }
    let mut rng = Lcg(7);
    for n in 0..300 {
        let id = &ids[rng.next(ids.len())];
        let (field, value) = match rng.next(3) {
            0 => ("/sn", json!(format!("Last{n}"))),
            1 => ("/givenName", json!(format!("Given{n}abcdef"))),
            _ => ("/mail", json!(format!("m{n}@example.com"))),
        };
        env.patch(id, field, value).await;
        if n % 50 == 0 {
            // Duplicate deliveries, and stale ones arriving after newer events.
            sqlx::query(
                "INSERT INTO outbox (object_type, object_id, rev, operation)
                 SELECT object_type, object_id, rev, operation FROM outbox ORDER BY random() LIMIT 20",
            )
            .execute(&env.app.db.pool)
            .await
            .unwrap();
        }
    }
    assert_converged(&env, &ids).await;
    assert_eq!(env.scalar("SELECT count(*) FROM sync_failures").await, 0);
    assert_eq!(env.handle().user_count(), 50);
    let stats = env.handle().stats();
    let calls = writes(&env);
    assert!(
        calls <= 350,
        "at most one write per change: {calls} {:?}",
        stats.calls
    );
    let (p50, p99): (f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY (body->>'latencyMs')::float8),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY (body->>'latencyMs')::float8)
         FROM sync_audit",
    )
    .fetch_one(&env.app.db.pool)
    .await
    .unwrap();
    eprintln!(
        "350 changes: {calls} write calls {:?}; commit → Salesforce ack p50 {p50} ms, p99 {p99} ms",
        stats.calls
    );
    worker.stop().await;
}

#[tokio::test]
async fn injected_503s_converge() {
    let env = env(0).await;
    env.handle().update_faults(&FaultUpdate {
        rate_503: Some(0.2),
        ..FaultUpdate::default()
    });
    let worker = env.spawn_worker();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(env.create(&format!("flaky{i}@idm-sync.test")).await);
    }
    for (n, id) in ids.iter().enumerate() {
        env.patch(id, "/sn", json!(format!("Flaky{n}"))).await;
    }
    assert_converged(&env, &ids).await;
    assert_eq!(env.scalar("SELECT count(*) FROM sync_failures").await, 0);
    assert_eq!(env.handle().user_count(), 20, "no duplicate creates");
    worker.stop().await;
}

#[tokio::test]
async fn duplicate_username_is_a_sync_failure_until_fixed_and_retried() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    let first = env.create("Dup.User@idm-sync.test").await;
    env.wait_synced(&first).await;
    // Differs only in case: a distinct managed user, the same Salesforce username.
    let second = env.create("dup.user@idm-sync.test").await;
    wait_until("a sync failure", async || {
        env.failures("true").await["resultCount"] == 1
    })
    .await;
    let failures = env.failures(&format!("objectId eq \"{second}\"")).await;
    let f = &failures["result"][0];
    assert_eq!(f["errorCode"], "DUPLICATE_USERNAME", "{f}");
    assert_eq!(f["mapping"], "managedUser_systemSalesforceUser");
    assert_eq!(f["situation"], "ABSENT");
    assert_eq!(f["action"], "CREATE");
    assert_eq!(f["revision"], json!(env.rev(&second).await));
    assert!(f["attempts"].as_i64().unwrap() >= 1);
    assert!(f["firstFailed"].is_string() && f["lastFailed"].is_string());
    assert!(env.linked(&second).await.is_none());

    // Fixed in Salesforce (the first user's account renamed), then retried over REST.
    let sf_first = env.linked(&first).await.unwrap();
    env.sf
        .update(
            &sf_first,
            &record(json!({"Username": "renamed@idm-sync.test"})),
        )
        .await
        .unwrap();
    let failure_id = f["_id"].as_str().unwrap();
    let res = env
        .app
        .post(&format!("/sync/failures/{failure_id}?_action=retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let sf = env.wait_synced(&second).await;
    assert_eq!(sf["Username"], "dup.user@idm-sync.test");
    wait_until("the failure cleared", async || {
        env.failures("true").await["resultCount"] == 0
    })
    .await;
    let res = env
        .app
        .post("/sync/failures/nope?_action=retry")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = env
        .app
        .post("/sync/failures?_action=retryAll")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["retried"], 0);
    worker.stop().await;
}

#[tokio::test]
async fn rate_limit_pauses_then_resumes() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    let warm = env.create("warm@idm-sync.test").await;
    env.wait_synced(&warm).await;
    let used = env.handle().stats().api_usage;
    env.handle().update_faults(&FaultUpdate {
        daily_limit: Some(used),
        ..FaultUpdate::default()
    });
    let id = env.create("limited@idm-sync.test").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        env.linked(&id).await.is_none(),
        "nothing written while limited"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM sync_failures").await,
        0,
        "a spent allowance is not a failure"
    );
    env.handle().update_faults(&FaultUpdate {
        daily_limit: Some(used + 10_000),
        ..FaultUpdate::default()
    });
    let sf = env.wait_synced(&id).await;
    assert_eq!(sf["Username"], "limited@idm-sync.test");
    worker.stop().await;
}

#[tokio::test]
async fn a_disabled_connector_pauses_the_worker_until_enabled() {
    let env = env(0).await;
    let mut settings = env.settings();
    settings.authorization_poll = Duration::from_millis(200);
    let worker = env.spawn_worker_with(settings);
    let warm = env.create("warm.enabled@idm-sync.test").await;
    env.wait_synced(&warm).await;
    env.sf.set_enabled(false).await.unwrap();
    // The gate re-reads the state every couple of seconds.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let writes_before = writes(&env);
    let id = env.create("while.disabled@idm-sync.test").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        env.linked(&id).await.is_none(),
        "nothing sent while disabled"
    );
    assert_eq!(
        writes(&env),
        writes_before,
        "no Salesforce write while disabled"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM sync_failures").await,
        0,
        "a disabled connector is not a failure"
    );
    env.sf.set_enabled(true).await.unwrap();
    let sf = env.wait_synced(&id).await;
    assert_eq!(sf["Username"], "while.disabled@idm-sync.test");
    worker.stop().await;
}

#[tokio::test]
async fn an_aborted_worker_loses_nothing() {
    let env = env(0).await;
    // Slow Salesforce calls so the abort lands mid-batch.
    env.handle().update_faults(&FaultUpdate {
        latency_ms: Some(40),
        ..FaultUpdate::default()
    });
    let worker = env.spawn_worker();
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(env.create(&format!("crash{i}@idm-sync.test")).await);
    }
    wait_until("some progress", async || {
        env.scalar("SELECT count(*) FROM links").await >= 3
    })
    .await;
    worker.task.abort();
    drop(worker);
    let mut edits: HashMap<String, String> = HashMap::new();
    for (n, id) in ids.iter().enumerate().step_by(3) {
        env.patch(id, "/sn", json!(format!("After{n}"))).await;
        edits.insert(id.clone(), format!("After{n}"));
    }
    let worker = env.spawn_worker();
    assert_converged(&env, &ids).await;
    assert_eq!(env.handle().user_count(), 40, "no duplicate creates");
    assert_eq!(env.scalar("SELECT count(*) FROM sync_failures").await, 0);
    worker.stop().await;
}

/// Change events lost on the broker's side (purged queues, as a broker rebuilt from scratch
/// or a shrunk partition count would leave them): `resync` finds every user they left
/// behind — an edit, a delete, a create — and implicit sync converges.
#[tokio::test]
async fn resync_recovers_changes_the_broker_lost() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    let edited = env.create("edited@idm-sync.test").await;
    let deleted = env.create("deleted@idm-sync.test").await;
    env.wait_synced(&edited).await;
    env.wait_synced(&deleted).await;
    let deleted_sf = env.linked(&deleted).await.unwrap();
    worker.stop().await;

    env.patch(&edited, "/sn", json!("Recovered")).await;
    env.delete(&deleted).await;
    let created = env.create("created@idm-sync.test").await;
    wait_until("the relay published the three changes", async || {
        env.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .await
            == 0
    })
    .await;
    let conn = lapin::Connection::connect(&env.amqp_url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut purged = 0;
    for queue in env.topology.queues() {
        purged += channel
            .queue_purge(queue.into(), Default::default())
            .await
            .unwrap();
    }
    assert!(purged >= 3, "the three change events were queued: {purged}");
    conn.close(200, "bye".into()).await.unwrap();

    let res = env
        .app
        .post(&format!(
            "/sync?_action=resync&mapping={}",
            idm_sync::outbound::worker::OUTBOUND_MAPPING
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["resynced"], 3, "{body}");

    let worker = env.spawn_worker();
    assert_converged(&env, &[edited.clone(), created.clone()]).await;
    assert_eq!(env.wait_synced(&edited).await["LastName"], "Recovered");
    wait_until("the deleted user's deactivation", async || {
        env.handle().user(&deleted_sf).unwrap()["IsActive"] == false
    })
    .await;
    wait_until("its link removed", async || {
        env.linked(&deleted).await.is_none()
    })
    .await;
    assert_eq!(env.handle().user_count(), 3, "no duplicate creates");
    assert_eq!(env.scalar("SELECT count(*) FROM sync_failures").await, 0);
    worker.stop().await;
}

#[tokio::test]
async fn unicode_names_reach_salesforce_and_a_too_long_one_fails_alone_until_fixed() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    // The sample's Alias transform cuts givenName at 8 UTF-16 units: inside the fourth emoji.
    let mut emoji = env.user_body("emoji@idm-sync.test");
    emoji["givenName"] = json!("a😀😀😀😀");
    let emoji = crate::helpers::create_managed(&env.app, &emoji).await;
    let mut long = env.user_body("long@idm-sync.test");
    long["givenName"] = json!("Ä".repeat(41));
    let long = crate::helpers::create_managed(&env.app, &long).await;
    let mut plain = env.user_body("zoe@idm-sync.test");
    plain["givenName"] = json!("Zoë-Ångström");
    plain["sn"] = json!("山田 شريف");
    let plain = crate::helpers::create_managed(&env.app, &plain).await;

    let sf = env.wait_synced(&emoji).await;
    assert_eq!(sf["FirstName"], "a😀😀😀😀");
    assert_eq!(
        sf["Alias"], "a😀😀😀",
        "the half emoji at the cut is dropped"
    );
    let sf = env.wait_synced(&plain).await;
    assert_eq!(sf["Alias"], "Zoë-Ångs");
    assert_eq!(sf["LastName"], "山田 شريف");

    // 41 characters: Salesforce's FirstName holds 40. That user alone fails, naming the field.
    wait_until("the too-long name's failure", async || {
        env.failures("true").await["resultCount"] == 1
    })
    .await;
    let failures = env.failures(&format!("objectId eq \"{long}\"")).await;
    let f = &failures["result"][0];
    assert_eq!(f["errorCode"], "STRING_TOO_LONG", "{f}");
    assert!(f["message"].as_str().unwrap().contains("First Name"), "{f}");
    assert!(env.linked(&long).await.is_none());

    // Fixed over REST: the next sync goes through and the failure clears.
    env.patch(&long, "/givenName", json!("Ä".repeat(40))).await;
    let sf = env.wait_synced(&long).await;
    assert_eq!(sf["FirstName"], "Ä".repeat(40));
    wait_until("the failure cleared", async || {
        env.failures("true").await["resultCount"] == 0
    })
    .await;
    worker.stop().await;
}
