//! Reconciling the outbound mapping: recon reads Salesforce, queues the users that differ, and
//! the worker writes them; a second run writes nothing; analyze writes nothing; a run racing
//! implicit sync ends at the latest managed revision.

use serde_json::{Value, json};

use super::{Env, assert_converged, env, wait_until};
use crate::helpers::RoleProcess;
use crate::salesforce::support as sf;

const OUTBOUND: &str = "managedUser_systemSalesforceUser";

/// Runs an outbound recon to its end over REST; its summary.
pub(super) async fn recon(env: &Env, analyze: bool) -> Value {
    let res = env
        .app
        .post(&format!(
            "/recon?_action=recon&mapping={OUTBOUND}&waitForCompletion=true&analyze={analyze}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let started: Value = res.json().await.unwrap();
    let id = started["_id"].as_str().unwrap();
    let res = env.app.get(&format!("/recon/{id}")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn situation(summary: &Value, name: &str) -> i64 {
    summary["situationSummary"][name].as_i64().unwrap_or(-1)
}

pub(super) async fn sync_rows(env: &Env) -> i64 {
    env.scalar("SELECT count(*) FROM outbox WHERE operation = 'sync'")
        .await
}

/// Changes a Salesforce user's field "in Salesforce" (not through idm-sync).
async fn drift(env: &Env, sf_id: &str, field: &str, value: &str) {
    let mut record = serde_json::Map::new();
    record.insert(field.into(), json!(value));
    env.sf.update(sf_id, &record).await.unwrap();
}

fn set_outbound_enable_sync(env: &Env, on: bool) {
    let path = env.conf.join("sync.json");
    let mut sync: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    sync["mappings"][1]["enableSync"] = Value::Bool(on);
    std::fs::write(&path, sync.to_string()).unwrap();
}

#[tokio::test]
async fn outbound_recon_corrects_drift_creates_the_missing_and_then_writes_nothing() {
    let env = env(0).await;
    // Implicit sync is off: the worker acknowledges changes without writing them.
    set_outbound_enable_sync(&env, false);
    let worker = env.spawn_worker();
    let a = env.create("drift.a@idm-sync.test").await;
    let b = env.create("drift.b@idm-sync.test").await;
    wait_until("the worker takes both changes", async || {
        worker.stats.per_partition().iter().sum::<u64>() >= 2
    })
    .await;
    assert_eq!(env.linked(&a).await, None);

    // The first run finds both ABSENT and queues them; the worker creates them although
    // implicit sync is off (recon's writes are not implicit sync).
    let first = recon(&env, false).await;
    assert_eq!(first["state"], "SUCCESS", "{first}");
    assert_eq!(situation(&first, "ABSENT"), 2, "{first}");
    assert_converged(&env, &[a.clone(), b.clone()]).await;
    let sf_a = env.linked(&a).await.unwrap();

    // Someone changes a mapped value in Salesforce; a managed edit is made while sync is off.
    drift(&env, &sf_a, "LastName", "Changed-In-Salesforce").await;
    env.patch(&b, "/sn", json!("Edited-While-Off")).await;
    wait_until("the worker takes the edit", async || {
        worker.stats.per_partition().iter().sum::<u64>() >= 3
    })
    .await;

    // Analyze reports both and writes nothing.
    let rows = sync_rows(&env).await;
    let analyzed = recon(&env, true).await;
    assert_eq!(analyzed["state"], "SUCCESS", "{analyzed}");
    assert_eq!(situation(&analyzed, "CONFIRMED"), 2, "{analyzed}");
    assert_eq!(
        analyzed["progress"]["source"]["existing"]["total"], "2",
        "{analyzed}"
    );
    assert_eq!(sync_rows(&env).await, rows);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        env.handle().user(&sf_a).unwrap()["LastName"],
        "Changed-In-Salesforce"
    );

    // The run queues exactly the two that differ; the worker puts them in step.
    let second = recon(&env, false).await;
    assert_eq!(second["state"], "SUCCESS", "{second}");
    assert_eq!(sync_rows(&env).await, rows + 2, "{second}");
    assert_eq!(
        env.scalar("SELECT count(*) FROM outbox WHERE operation = 'sync' AND mapping IS DISTINCT FROM 'managedUser_systemSalesforceUser'")
            .await,
        0,
        "queued for the reconciled mapping's lane only"
    );
    // a's managed revision did not move (its link is already "synced"): wait for the worker to
    // apply the sync the run queued before comparing.
    wait_until("the worker corrects the drift", async || {
        env.handle().user(&sf_a).unwrap()["LastName"] != "Changed-In-Salesforce"
    })
    .await;
    assert_converged(&env, &[a.clone(), b.clone()]).await;

    // Nothing differs any more: a third run queues nothing.
    let rows = sync_rows(&env).await;
    let third = recon(&env, false).await;
    assert_eq!(third["state"], "SUCCESS", "{third}");
    assert_eq!(situation(&third, "CONFIRMED"), 2, "{third}");
    assert_eq!(sync_rows(&env).await, rows, "{third}");
    worker.stop().await;
}

#[tokio::test]
async fn outbound_recon_racing_implicit_sync_ends_at_the_latest_revision() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(env.create(&format!("race.{i}@idm-sync.test")).await);
    }
    for id in &ids {
        env.wait_synced(id).await;
    }
    // Every user drifts in Salesforce, then is edited while the run reads and queues.
    for id in &ids {
        let sf_id = env.linked(id).await.unwrap();
        drift(&env, &sf_id, "FirstName", "Drifted").await;
    }
    let edits = async {
        for round in 0..3 {
            for id in &ids {
                env.patch(id, "/sn", json!(format!("Edit{round}"))).await;
            }
        }
    };
    let (summary, ()) = tokio::join!(recon(&env, false), edits);
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    assert_converged(&env, &ids).await;
    worker.stop().await;
}

#[tokio::test]
async fn the_cli_reconciles_the_outbound_mapping_in_a_process_of_its_own() {
    let env = env(0).await;
    let id = env.create("cli.outbound@idm-sync.test").await;
    let mut cmd = RoleProcess::command("recon", &env.conf, &env.app.db.url);
    cmd.args(["--mapping", OUTBOUND, "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["mapping"], OUTBOUND);
    assert_eq!(situation(&summary, "ABSENT"), 1, "{summary}");
    // Queued for the worker, which is not running here.
    assert_eq!(env.app.outbox_for(&id).await.last().unwrap().0, "sync");
}

/// Salesforce users of the org, by Username.
async fn sf_usernames(env: &Env) -> Vec<(String, String)> {
    sf::id_usernames(&env.sf, false).await
}

#[tokio::test]
async fn a_correlated_user_is_found_and_linked_and_the_rest_are_unassigned() {
    let env = env(3).await;
    let org = sf_usernames(&env).await;
    let (sf_id, username) = org
        .iter()
        .find(|(_, u)| !u.starts_with("integration"))
        .cloned()
        .unwrap();
    set_outbound_enable_sync(&env, false);
    let worker = env.spawn_worker();
    let mut body = env.user_body(&username);
    body["userName"] = json!(username);
    let id = crate::helpers::create_managed(&env.app, &body).await;
    wait_until("the worker takes the create", async || {
        worker.stats.per_partition().iter().sum::<u64>() >= 1
    })
    .await;

    let summary = recon(&env, false).await;
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    assert_eq!(situation(&summary, "FOUND"), 1, "{summary}");
    // Every other Salesforce user is linked to nothing: UNASSIGNED, whose policy is EXCEPTION.
    assert_eq!(
        situation(&summary, "UNASSIGNED"),
        org.len() as i64 - 1,
        "{summary}"
    );
    assert_eq!(
        summary["statusSummary"]["FAILURE"],
        json!(org.len() - 1),
        "{summary}"
    );
    wait_until("the worker links the found user", async || {
        env.linked(&id).await.as_deref() == Some(sf_id.as_str())
    })
    .await;
    assert_converged(&env, &[id]).await;
    worker.stop().await;
}

#[tokio::test]
async fn deactivations_wait_for_the_guard_and_then_go_through_the_worker() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(env.create(&format!("gone.{i}@idm-sync.test")).await);
    }
    for id in &ids {
        env.wait_synced(id).await;
    }
    worker.stop().await;
    // Implicit sync off: three deletions never reach Salesforce.
    set_outbound_enable_sync(&env, false);
    let worker = env.spawn_worker();
    let mut sf_ids = Vec::new();
    for id in &ids[..3] {
        sf_ids.push(env.linked(id).await.unwrap());
        env.delete(id).await;
    }
    wait_until("the worker takes the deletes", async || {
        worker.stats.per_partition().iter().sum::<u64>() >= 3
    })
    .await;

    // Three of five Salesforce users (the integration user is the fifth) is past the guard's
    // share: the run fails and queues nothing.
    let rows = sync_rows(&env).await;
    let guarded = recon(&env, false).await;
    assert_eq!(guarded["state"], "FAILED", "{guarded}");
    assert_eq!(situation(&guarded, "SOURCE_MISSING"), 3, "{guarded}");
    assert_eq!(sync_rows(&env).await, rows);
    for sf_id in &sf_ids {
        assert_eq!(env.handle().user(sf_id).unwrap()["IsActive"], true);
    }

    // allowMassChange lets them through; the worker deactivates and unlinks.
    let res = env
        .app
        .post(&format!(
            "/recon?_action=recon&mapping={OUTBOUND}&waitForCompletion=true&allowMassChange=true"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(sync_rows(&env).await, rows + 3);
    for sf_id in &sf_ids {
        wait_until("the Salesforce user is deactivated", async || {
            env.handle().user(sf_id).unwrap()["IsActive"] == false
        })
        .await;
    }
    for id in &ids[..3] {
        wait_until("the link is gone", async || env.linked(id).await.is_none()).await;
    }
    assert_eq!(
        env.handle()
            .user(&env.linked(&ids[3]).await.unwrap())
            .unwrap()["IsActive"],
        true
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_policys_post_action_runs_for_each_entry_but_not_in_analyze() {
    let env = env(2).await;
    // The app loaded sync.json at start; the command line loads the edited file.
    let path = env.conf.join("sync.json");
    let mut sync: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let outbound = &mut sync["mappings"][1];
    assert_eq!(outbound["name"], OUTBOUND);
    outbound["allowEmptySourceSet"] = json!(true);
    for policy in outbound["policies"].as_array_mut().unwrap() {
        if policy["situation"] == "UNASSIGNED" {
            policy["action"] = json!("REPORT");
            policy["postAction"] = json!({"type": "text/javascript",
                "source": "throw new Error('post ' + action + ' ' + situation + ' ' + reconId)"});
        }
    }
    std::fs::write(&path, sync.to_string()).unwrap();
    let org = sf_usernames(&env).await.len() as i64;
    let run = |analyze: bool| idm_sync::recon_cli::ReconCommand {
        conf_dir: env.conf.to_path_buf(),
        database: crate::helpers::db_settings(&env.app.db.url),
        mapping: Some(OUTBOUND.into()),
        analyze,
        allow_mass_change: false,
    };
    let analyzed = idm_sync::recon_cli::run(&run(true), std::future::pending())
        .await
        .unwrap();
    assert_eq!(situation(&analyzed, "UNASSIGNED"), org, "{analyzed}");
    assert_eq!(analyzed["statusSummary"]["FAILURE"], 0, "{analyzed}");

    let summary = idm_sync::recon_cli::run(&run(false), std::future::pending())
        .await
        .unwrap();
    assert_eq!(summary["statusSummary"]["FAILURE"], org, "{summary}");
    let id = summary["_id"].as_str().unwrap();
    let messages: Vec<String> =
        sqlx::query_scalar("SELECT body->>'message' FROM recon_audit WHERE recon_id = $1")
            .bind(id)
            .fetch_all(&env.app.db.pool)
            .await
            .unwrap();
    assert_eq!(messages.len() as i64, org);
    for m in messages {
        assert!(m.contains(&format!("post REPORT UNASSIGNED {id}")), "{m}");
    }
}

#[tokio::test]
async fn unlinked_salesforce_users_past_the_memory_cap_wait_in_a_table() {
    use std::sync::Arc;
    let env = env(5).await;
    let id = env.create("kept.user@idm-sync.test").await;
    let org = sf_usernames(&env).await.len() as i64;
    let conf = idm_sync::config::Conf::load(&env.conf).unwrap();
    let managed = idm_sync::managed::ManagedObjects::new(
        env.app.db.pool.clone(),
        Arc::new(conf.managed.clone()),
    );
    let sync = idm_sync::mapping::SyncConfig::load(&env.conf).unwrap();
    let engine = idm_sync::recon::ReconEngine::new(
        managed,
        Arc::new(sync),
        idm_sync::connectors::Connectors::from_clients([env.sf.clone()]),
        idm_sync::recon::ReconSettings {
            unlinked_in_memory: 2,
            ..Default::default()
        },
    );
    let summary = engine
        .run(idm_sync::recon::ReconRequest {
            mapping: OUTBOUND.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    assert_eq!(situation(&summary, "UNASSIGNED"), org, "{summary}");
    assert_eq!(situation(&summary, "ABSENT"), 1, "{summary}");
    assert_eq!(env.app.outbox_for(&id).await.last().unwrap().0, "sync");
    assert_eq!(
        env.scalar("SELECT count(*) FROM recon_unlinked").await,
        0,
        "scratch cleared"
    );
}
