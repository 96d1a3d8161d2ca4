//! Inbound reconciliation outcomes: creates, the echo guarantee, updates, correlation, the
//! target phase, analyze, reconById, the sample's own sync.json, links and audit over REST.

use serde_json::{Value, json};

use super::support::{Env, MAPPING, env, env_with, env_with_audit, record, run, sit, target};

#[tokio::test]
async fn first_recon_creates_users_links_and_outbox_rows() {
    let env = env(12).await;
    let s = env.recon("").await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(s["stage"], "COMPLETED_SUCCESS");
    assert_eq!(s["mapping"], MAPPING);
    assert_eq!(s["progress"]["source"]["existing"]["processed"], 12);
    assert_eq!(s["progress"]["source"]["existing"]["total"], "12");
    assert_eq!(sit(&s, "ABSENT"), 11);
    assert_eq!(sit(&s, "SOURCE_IGNORED"), 1, "the autoproc user");
    assert_eq!(s["situationSummary"].as_object().unwrap().len(), 13);
    assert_eq!(target(&s, "created"), 11);
    assert_eq!(s["progress"]["links"]["created"], 11);
    assert_eq!(
        s["statusSummary"],
        json!({"SUCCESS": 12, "FAILURE": 0}),
        "{s}"
    );
    let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "_id",
            "mapping",
            "state",
            "stage",
            "stageDescription",
            "progress",
            "situationSummary",
            "statusSummary",
            "durationSummary",
            "parameters",
            "started",
            "ended",
            "duration",
            "auditSummary"
        ]
    );
    // conf/audit.json writes what changed: the 11 creates (IGNORE is not an audit event).
    assert_eq!(s["auditSummary"], json!({"written": 11, "filtered": 0}));
    let progress: Vec<&String> = s["progress"].as_object().unwrap().keys().collect();
    assert_eq!(progress, ["source", "target", "links"]);
    assert_eq!(env.users().await, 11);
    assert_eq!(env.links().await, 11);
    assert_eq!(env.outbox().await, 11);
    // Every link holds the managed user as written: the worker has nothing to send back.
    let in_step = env
        .scalar(
            "SELECT count(*) FROM links l JOIN managed_objects m ON m.id = l.second_id
             WHERE l.synced_snapshot = m.body AND l.synced_rev = m.rev",
        )
        .await;
    assert_eq!(in_step, 11);
    // Mapped values, including IsActive → accountStatus.
    let people = env.people().await;
    let user = env.linked_user(people[0]["Id"].as_str().unwrap()).await;
    assert_eq!(user["userName"], people[0]["Username"]);
    assert!(user["accountStatus"] == "active" || user["accountStatus"] == "inactive");
}

#[tokio::test]
async fn second_recon_of_an_unchanged_org_writes_nothing() {
    let env = env(10).await;
    env.recon("").await;
    let (outbox, rev) = (env.outbox().await, env.max_rev().await);
    let link_revs = env.scalar("SELECT sum(rev)::int8 FROM links").await;
    let s = env.recon("").await;
    assert_eq!(s["state"], "SUCCESS");
    assert_eq!(sit(&s, "CONFIRMED"), 9);
    assert_eq!(target(&s, "unchanged"), 9);
    assert_eq!(target(&s, "updated"), 0);
    assert_eq!(target(&s, "created"), 0);
    assert_eq!(s["progress"]["links"]["existing"]["processed"], 9);
    assert_eq!(env.outbox().await, outbox, "no outbox row");
    assert_eq!(env.max_rev().await, rev, "no revision");
    // conf/audit.json writes changes: the unchanged entries are counted, not written.
    assert_eq!(s["auditSummary"], json!({"written": 0, "filtered": 9}));
    let run = s["_id"].as_str().unwrap();
    let sql = format!("SELECT count(*) FROM recon_audit WHERE recon_id = '{run}'");
    assert_eq!(env.scalar(&sql).await, 0, "no audit row");
    assert_eq!(
        env.scalar("SELECT sum(rev)::int8 FROM links").await,
        link_revs,
        "no link write"
    );
    // Every link remembers the record it is in step with: the next run skips loading them.
    assert_eq!(
        env.scalar("SELECT count(*) FROM links WHERE source_digest IS NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn an_audit_json_without_a_recon_filter_writes_every_entry() {
    // One handler with the recon topic only, and no filter for it.
    let env = env_with_audit(
        4,
        &json!({"eventHandlers": [{"config": {"topics": ["recon"]}}]}),
    )
    .await;
    env.recon("").await;
    let s = env.recon("").await;
    assert_eq!(sit(&s, "CONFIRMED"), 3);
    assert_eq!(s["auditSummary"], json!({"written": 3, "filtered": 0}));
    let run = s["_id"].as_str().unwrap();
    let res = env
        .app
        .get(&format!(
            "/audit/recon?_queryFilter=reconId%20eq%20%22{run}%22"
        ))
        .send()
        .await
        .unwrap();
    let page: Value = res.json().await.unwrap();
    let entries = page["result"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{page}");
    for e in entries {
        assert_eq!(e["situation"], "CONFIRMED");
        assert_eq!(e["action"], "UPDATE");
        assert_eq!(e["message"], "target unchanged");
    }
}

#[tokio::test]
async fn the_unchanged_fast_path_yields_to_a_mapping_change_and_to_a_managed_edit() {
    let env = env(6).await;
    env.recon("").await;
    let people = env.people().await;
    let edited = people[0]["Id"].as_str().unwrap().to_owned();
    // A REST edit moves the managed revision past the link's snapshot: recon must look again
    // (and, as the inbound mapping says, bring Salesforce's value back).
    let user = env.linked_user(&edited).await;
    let res = env
        .app
        .patch(&format!("/managed/user/{}", user["_id"].as_str().unwrap()))
        .json(&json!([{"operation": "replace", "field": "sn", "value": "Edited"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let s = env.recon("").await;
    assert_eq!(target(&s, "updated"), 1, "{s}");
    assert_eq!(target(&s, "unchanged"), 4, "{s}");
    assert_ne!(env.linked_user(&edited).await["sn"], "Edited");

    // A changed mapping (sn now upper-cased) changes every result: no record may be skipped.
    let sync_path = env.conf.join("sync.json");
    let mut sync: Value =
        serde_json::from_str(&std::fs::read_to_string(&sync_path).unwrap()).unwrap();
    let props = sync["mappings"][0]["properties"].as_array_mut().unwrap();
    let sn = props.iter_mut().find(|p| p["target"] == "sn").unwrap();
    sn["transform"] = json!({"type": "text/javascript", "source": "source.toUpperCase();"});
    std::fs::write(&sync_path, sync.to_string()).unwrap();
    let s = run(&env.engine()).await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(target(&s, "updated"), 5, "{s}");
    let sn = env.linked_user(&edited).await["sn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sn, sn.to_uppercase());
}

#[tokio::test]
async fn a_changed_salesforce_user_updates_just_that_user() {
    let env = env(10).await;
    env.recon("").await;
    let people = env.people().await;
    let (changed, deactivated) = (
        people[1]["Id"].as_str().unwrap().to_owned(),
        people[2]["Id"].as_str().unwrap().to_owned(),
    );
    env.sf
        .update(&changed, &record(json!({"LastName": "Renamed"})))
        .await
        .unwrap();
    env.sf
        .update(&deactivated, &record(json!({"IsActive": true})))
        .await
        .unwrap();
    env.recon("").await; // the deactivated one may have started inactive: make it active first
    let outbox = env.outbox().await;
    env.sf.deactivate(&deactivated).await.unwrap();
    let s = env.recon("").await;
    assert_eq!(target(&s, "updated"), 1, "{s}");
    assert_eq!(target(&s, "unchanged"), 8);
    assert_eq!(env.outbox().await, outbox + 1);
    let user = env.linked_user(&changed).await;
    assert_eq!(user["sn"], "Renamed");
    let user = env.linked_user(&deactivated).await;
    assert_eq!(user["accountStatus"], "inactive");
    let snapshot: Value =
        sqlx::query_scalar("SELECT l.synced_snapshot FROM links l WHERE l.first_id = $1")
            .bind(&deactivated)
            .fetch_one(&env.app.db.pool)
            .await
            .unwrap();
    assert_eq!(snapshot["accountStatus"], "inactive", "snapshot in step");
}

#[tokio::test]
async fn correlation_links_an_existing_user_instead_of_duplicating_it() {
    let env = env(6).await;
    let people = env.people().await;
    let username = people[0]["Username"].as_str().unwrap();
    let res = env
        .app
        .post("/managed/user?_action=create")
        .json(&json!({"userName": username, "givenName": "Old", "sn": "Name", "mail": "old@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let existing: Value = res.json().await.unwrap();
    let s = env.recon("").await;
    assert_eq!(sit(&s, "FOUND"), 1, "{s}");
    assert_eq!(sit(&s, "ABSENT"), 4);
    assert_eq!(target(&s, "updated"), 1);
    assert_eq!(env.users().await, 5, "no duplicate");
    let user = env.linked_user(people[0]["Id"].as_str().unwrap()).await;
    assert_eq!(user["_id"], existing["_id"]);
    assert_eq!(user["mail"], people[0]["Email"], "updated from Salesforce");
}

#[tokio::test]
async fn past_the_memory_cap_touched_targets_are_marked_and_still_skipped() {
    let env = env(450).await;
    env.recon("").await;
    let people = env.people().await.len() as u64;
    env.app.create_user("stray.user").await;
    // Pages of 200: the first page's targets are held in memory, the rest go to recon_seen.
    let engine = env.engine_with(idm_sync::recon::ReconSettings {
        source_batch_size: 200,
        seen_in_memory: 300,
        ..Default::default()
    });
    let s = run(&engine).await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(sit(&s, "CONFIRMED"), people, "each linked user once: {s}");
    assert_eq!(sit(&s, "UNASSIGNED"), 1, "{s}");
    assert_eq!(
        s["progress"]["target"]["existing"]["processed"], 1,
        "the target phase visits the stray user alone: {s}"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM recon_seen").await,
        0,
        "scratch cleared"
    );
}

#[tokio::test]
async fn target_phase_reports_a_managed_user_without_counterpart() {
    let env = env(5).await;
    let stray = env.app.create_user("stray.user").await;
    let s = env.recon("").await;
    assert_eq!(s["state"], "SUCCESS");
    assert_eq!(sit(&s, "UNASSIGNED"), 1, "{s}");
    assert_eq!(s["statusSummary"]["FAILURE"], 1, "UNASSIGNED → EXCEPTION");
    assert_eq!(s["progress"]["target"]["existing"]["processed"], 1);
    assert_eq!(env.users().await, 5, "nothing deleted");
    let res = env
        .app
        .get("/audit/recon?_queryFilter=situation%20eq%20%22UNASSIGNED%22")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let audit: Value = res.json().await.unwrap();
    assert_eq!(audit["resultCount"], 1);
    let entry = &audit["result"][0];
    assert_eq!(entry["status"], "FAILURE");
    assert_eq!(entry["action"], "EXCEPTION");
    assert_eq!(entry["reconId"], s["_id"]);
    assert_eq!(
        entry["targetObjectId"],
        format!("managed/user/{}", stray["_id"].as_str().unwrap())
    );
}

#[tokio::test]
async fn a_linked_user_whose_source_is_out_of_the_source_query_is_confirmed_in_the_target_phase() {
    let env = env(6).await;
    env.recon("").await;
    let people = env.people().await;
    let outside = people[0]["Username"].as_str().unwrap();
    // Restrict the source query so one linked user is seen only by the target phase.
    let body = json!({"sourceQuery": {"_queryFilter": format!("!(Username eq \"{outside}\")")}});
    let s = env.recon_with_body("", Some(body)).await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(s["progress"]["target"]["existing"]["processed"], 1);
    assert_eq!(
        sit(&s, "CONFIRMED"),
        5,
        "4 in the source phase, 1 in the target phase"
    );
    assert_eq!(sit(&s, "SOURCE_MISSING"), 0);
}

#[tokio::test]
async fn analyze_assesses_and_writes_nothing() {
    let env = env(8).await;
    let s = env.recon("&analyze=true").await;
    assert_eq!(s["state"], "SUCCESS");
    assert_eq!(sit(&s, "ABSENT"), 7);
    assert_eq!(target(&s, "created"), 7, "what would be created");
    assert_eq!(env.users().await, 0);
    assert_eq!(env.links().await, 0);
    assert_eq!(env.outbox().await, 0);
}

#[tokio::test]
async fn recon_by_id_reconciles_one_user() {
    let env = env(6).await;
    env.recon("").await;
    let id = env.people().await[2]["Id"].as_str().unwrap().to_owned();
    env.sf
        .update(&id, &record(json!({"FirstName": "Single"})))
        .await
        .unwrap();
    let s = env.recon_by_id(&id).await;
    assert_eq!(s["state"], "SUCCESS");
    assert_eq!(s["progress"]["source"]["existing"]["processed"], 1);
    assert_eq!(target(&s, "updated"), 1);
    assert_eq!(env.linked_user(&id).await["givenName"], "Single");
}

#[tokio::test]
async fn recon_by_id_of_a_vanished_source_assesses_its_linked_user() {
    let env = env(4).await;
    env.recon("").await;
    let real = env.people().await[0]["Id"].as_str().unwrap().to_owned();
    // The link now names a Salesforce id that no query returns (the user is gone).
    let gone = "005000000000GONEAA";
    sqlx::query("UPDATE links SET first_id = $1 WHERE first_id = $2")
        .bind(gone)
        .bind(&real)
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    let s = env.recon_by_id(gone).await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(sit(&s, "SOURCE_MISSING"), 1, "{s}");
    // The sample's policy for SOURCE_MISSING is EXCEPTION: one failure, nothing deleted.
    assert_eq!(s["statusSummary"]["FAILURE"], 1, "{s}");
    assert_eq!(env.users().await, 3);
    let audit: Value = env
        .app
        .get("/audit/recon?_queryFilter=situation%20eq%20%22SOURCE_MISSING%22")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["resultCount"], 1, "{audit}");

    // An id nothing knows fails the run with the reason.
    let unknown = "005000000000NONEAA";
    let s = env.recon_by_id(unknown).await;
    assert_eq!(s["state"], "FAILED", "{s}");
    let why = s["stageDescription"].as_str().unwrap();
    assert!(why.contains(unknown) && why.contains("not found"), "{why}");
}

#[tokio::test]
async fn the_samples_own_sync_json_runs() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample-sync.json");
    let env = env_with(7, &fixture).await;
    let s = env.recon("").await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(sit(&s, "ABSENT"), 6);
    assert_eq!(sit(&s, "SOURCE_IGNORED"), 1);
    assert_eq!(env.users().await, 6);
    let s = env.recon("").await;
    assert_eq!(sit(&s, "CONFIRMED"), 6);
    assert_eq!(target(&s, "unchanged"), 6);
}

#[tokio::test]
async fn links_are_readable_at_repo_link() {
    let env: Env = env(5).await;
    env.recon("").await;
    let res = env
        .app
        .get(&format!(
            "/repo/link?_queryFilter=linkType%20eq%20%22{MAPPING}%22&_pageSize=3"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["resultCount"], 3);
    let link = &page["result"][0];
    let keys: Vec<&String> = link.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "_id",
            "_rev",
            "linkType",
            "linkQualifier",
            "firstId",
            "secondId"
        ]
    );
    assert_eq!(link["linkQualifier"], "default");
    let cookie = page["pagedResultsCookie"].as_str().unwrap();
    let rest: Value = env
        .app
        .get(&format!(
            "/repo/link?_queryFilter=true&_pageSize=3&_pagedResultsCookie={cookie}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["resultCount"], 1);
    assert!(rest["pagedResultsCookie"].is_null());
    let bad = env
        .app
        .get("/repo/link?_queryFilter=(")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
