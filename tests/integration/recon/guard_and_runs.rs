//! Runs: the mass-change guard, an empty source, one run per mapping, cancel, a crash.

use std::time::Duration;

use idm_sync::recon::ReconRequest;
use serde_json::{Value, json};

use super::support::{MAPPING, env, record, sit, target};

#[tokio::test]
async fn the_mass_change_guard_stops_a_run_that_would_delete_too_many() {
    let env = env(11).await;
    env.recon("").await;
    assert_eq!(env.users().await, 10);
    // Three of ten users stop qualifying (validSource rejects autoproc e-mails): UNQUALIFIED → DELETE.
    for p in env.people().await.iter().take(3) {
        let id = p["Id"].as_str().unwrap();
        env.sf
            .update(
                id,
                &record(json!({"Email": format!("autoproc.{}@example.org", &id[10..])})),
            )
            .await
            .unwrap();
    }
    let outbox = env.outbox().await;
    let s = env.recon("").await;
    assert_eq!(s["state"], "FAILED", "{s}");
    assert_eq!(sit(&s, "UNQUALIFIED"), 3);
    let why = s["stageDescription"].as_str().unwrap();
    assert!(
        why.contains("mass-change guard") && why.contains("3 of 10"),
        "{why}"
    );
    assert_eq!(env.users().await, 10, "nothing deleted");
    assert_eq!(env.outbox().await, outbox);

    let s = env.recon("&allowMassChange=true").await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(target(&s, "deleted"), 3);
    assert_eq!(env.users().await, 7);
    assert_eq!(env.links().await, 7);
    assert_eq!(env.outbox().await, outbox + 3, "a delete row each");
    let audit: Value = env
        .app
        .get("/audit/recon?_queryFilter=action%20eq%20%22DELETE%22")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["resultCount"], 3);
}

#[tokio::test]
async fn the_mass_change_guard_also_counts_deactivations() {
    let env = env(11).await;
    env.recon("").await;
    assert_eq!(env.users().await, 10);
    let people = env.people().await;
    // Three of ten users are deactivated in Salesforce; one of them also gets a new last name.
    for (i, p) in people.iter().take(3).enumerate() {
        let id = p["Id"].as_str().unwrap();
        let mut change = json!({"IsActive": false});
        if i == 0 {
            change["LastName"] = json!("Renamed");
        }
        env.sf.update(id, &record(change)).await.unwrap();
    }
    let first = people[0]["Id"].as_str().unwrap().to_owned();
    let s = env.recon("").await;
    assert_eq!(s["state"], "FAILED", "{s}");
    let why = s["stageDescription"].as_str().unwrap();
    assert!(
        why.contains("mass-change guard") && why.contains("deactivate 3 of 10"),
        "{why}"
    );
    let user = env.linked_user(&first).await;
    assert_eq!(user["accountStatus"], "active", "deactivation held: {user}");
    assert_eq!(user["sn"], "Renamed", "the other changes went in: {user}");
    let inactive = "SELECT count(*) FROM managed_objects WHERE body->>'accountStatus' = 'inactive'";
    assert_eq!(env.scalar(inactive).await, 0);

    let s = env.recon("&allowMassChange=true").await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(env.scalar(inactive).await, 3);
    assert_eq!(env.users().await, 10, "deactivated, not deleted");
    // Salesforce already shows them inactive: each link's snapshot agrees, so nothing echoes.
    let in_step = "SELECT count(*) FROM links WHERE synced_snapshot->>'accountStatus' = 'inactive'";
    assert_eq!(env.scalar(in_step).await, 3);
    let again = env.recon("").await;
    assert_eq!(again["state"], "SUCCESS", "{again}");
    assert_eq!(target(&again, "updated"), 0, "{again}");
}

#[tokio::test]
async fn an_empty_source_fails_the_run() {
    let env = env(5).await;
    let body = json!({"sourceQuery": {"_queryFilter": "Username eq \"nobody@nowhere.invalid\""}});
    let s = env.recon_with_body("", Some(body)).await;
    assert_eq!(s["state"], "FAILED");
    assert!(
        s["stageDescription"]
            .as_str()
            .unwrap()
            .contains("Cannot reconcile from an empty data source")
    );
    let bad = env
        .app
        .post(&format!("/recon?_action=recon&mapping={MAPPING}"))
        .json(&json!({"sourceQuery": {"_queryId": "query-all-ids"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = env
        .app
        .post("/recon?_action=recon&mapping=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let missing = env.app.get("/recon/no-such-run").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Reconciliation with id no-such-run not found."
    );
}

#[tokio::test]
async fn a_second_run_of_the_mapping_gets_409_and_cancel_stops_a_run() {
    let env = env(6000).await;
    let res = env
        .app
        .post(&format!("/recon?_action=recon&mapping={MAPPING}"))
        .send()
        .await
        .unwrap();
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["state"], "ACTIVE");
    let id = first["_id"].as_str().unwrap();
    let second = env
        .app
        .post(&format!("/recon?_action=recon&mapping={MAPPING}"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["code"], 409);
    assert_eq!(body["reason"], "Conflict");
    let delete = env
        .app
        .delete(&format!("/recon/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 409, "an ACTIVE run is not purged");

    let list: Value = env
        .app
        .get("/recon")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["reconciliations"][0]["_id"], id);

    let cancel: Value = env
        .app
        .post(&format!("/recon/{id}?_action=cancel"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancel["action"], "cancel");
    let s = env.wait_done(id).await;
    assert_eq!(s["state"], "CANCELED", "{s}");
    assert_eq!(s["stage"], "COMPLETED_CANCELED");
    assert!(env.users().await < 5999, "stopped at a page boundary");
    // Every page's writes committed whole: each user has its link and outbox row.
    assert_eq!(env.links().await, env.users().await);
    assert_eq!(env.outbox().await, env.users().await);

    // DELETE purges a finished run's summary; the audit entries stay.
    let audit = env.scalar("SELECT count(*) FROM recon_audit").await;
    let res = env
        .app
        .delete(&format!("/recon/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let purged: Value = res.json().await.unwrap();
    assert_eq!(purged["_id"], id);
    assert_eq!(purged["state"], "CANCELED");
    let res = env.app.get(&format!("/recon/{id}")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = env
        .app
        .delete(&format!("/recon/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(env.scalar("SELECT count(*) FROM recon_audit").await, audit);
}

#[tokio::test]
async fn a_run_that_dies_is_marked_failed_and_a_rerun_converges() {
    let env = env(5000).await;
    let engine = env.engine();
    let started = engine
        .start(ReconRequest {
            mapping: MAPPING.into(),
            ..ReconRequest::default()
        })
        .await
        .unwrap();
    // Let it commit a page or two, then kill it as a crash would.
    for _ in 0..200 {
        if env.users().await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.task.abort();
    let _ = started.task.await;
    let mut state = Value::Null;
    for _ in 0..100 {
        state = env.summary(&started.id).await["state"].clone();
        if state != "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "FAILED");
    let s = env.recon("").await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(env.users().await, 4999);
    assert_eq!(env.links().await, 4999);
    let duplicates = env
        .scalar("SELECT count(*) - count(DISTINCT body->>'userName') FROM managed_objects")
        .await;
    assert_eq!(duplicates, 0);
}
