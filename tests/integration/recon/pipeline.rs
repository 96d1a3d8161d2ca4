//! Recon assesses page N+1 while page N is written, and writes a long page as several
//! transactions side by side. An assessment that page N's writes could have changed is made
//! again, and two parts of a page that meet on a user name end as one transaction would:
//! the outcome is the one a strictly page-by-page, one-transaction run gives.

use std::sync::Arc;

use idm_sync::connectors::Connectors;
use idm_sync::managed::ManagedObjects;
use idm_sync::mapping::SyncConfig;
use idm_sync::recon::{ReconEngine, ReconSettings};
use serde_json::json;

use super::support::{Env, env_with, record, run, shipped_sync_with, sit, target};

/// The shipped sync.json, the inbound mapping correlating on the e-mail address (which,
/// unlike the user name, two Salesforce users may share).
fn sync_correlating_on_mail() -> std::path::PathBuf {
    shipped_sync_with(|sync| {
        sync["mappings"][0]["correlationQuery"] = json!({
            "type": "text/javascript",
            "source": "({ _queryFilter: \"mail eq \" + JSON.stringify(source.Email) })"
        });
    })
}

/// An engine that reads Salesforce 200 users per page (its smallest page).
fn small_pages(env: &Env) -> ReconEngine {
    let conf = idm_sync::config::Conf::load(&env.conf).unwrap();
    let managed = ManagedObjects::new(env.app.db.pool.clone(), Arc::new(conf.managed.clone()));
    let settings = ReconSettings {
        source_batch_size: 200,
        ..ReconSettings::default()
    };
    ReconEngine::new(
        managed,
        Arc::new(SyncConfig::load(&env.conf).unwrap()),
        Connectors::from_clients([env.sf.clone()]),
        settings,
    )
}

#[tokio::test]
async fn a_page_correlates_with_what_the_page_before_created() {
    let sync = sync_correlating_on_mail();
    let env = env_with(450, &sync).await;
    let _ = std::fs::remove_file(&sync);
    // One managed user before the run, so correlation runs (IDM skips it for an empty
    // target set).
    let body = json!({"userName": "bystander@idm-sync.test", "givenName": "B", "sn": "Y",
        "mail": "bystander@example.com", "profileId": "00e000000000000AAA"});
    crate::helpers::create_managed(&env.app, &body).await;
    // Two Salesforce users share an e-mail address, one on the first page, one on the second.
    let users = env.sf_users().await;
    assert_eq!(users.len(), 450);
    let people: Vec<_> = users
        .iter()
        .enumerate()
        .filter(|(_, u)| !u["Email"].as_str().unwrap().starts_with("autoproc"))
        .collect();
    let (first, _) = people.iter().find(|(i, _)| *i < 200).unwrap();
    let (second, _) = people.iter().find(|(i, _)| *i >= 250 && *i < 400).unwrap();
    let shared = users[*first]["Email"].as_str().unwrap().to_owned();
    let second_id = users[*second]["Id"].as_str().unwrap().to_owned();
    env.sf
        .update(&second_id, &record(json!({"Email": shared})))
        .await
        .unwrap();

    // Each page's inserts take a while to commit, so the next page is surely assessed
    // against the repository before them.
    for sql in [
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$",
        "CREATE TRIGGER slow_commit AFTER INSERT ON managed_objects
         FOR EACH STATEMENT EXECUTE FUNCTION slow_commit()",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&env.app.db.pool)
            .await
            .unwrap();
    }

    let s = run(&small_pages(&env)).await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    // Page by page, the second page finds the user the first created (already linked to
    // the first source): FOUND_ALREADY_LINKED, whose policy is EXCEPTION. Assessed against
    // the repository before the first page's writes, it would be ABSENT and create a twin.
    assert_eq!(sit(&s, "FOUND_ALREADY_LINKED"), 1, "{s}");
    let qualifying = people.len() as u64;
    assert_eq!(target(&s, "created"), qualifying - 1, "{s}");
    let twins: i64 =
        sqlx::query_scalar("SELECT count(*) FROM managed_objects WHERE body->>'mail' = $1")
            .bind(&shared)
            .fetch_one(&env.app.db.pool)
            .await
            .unwrap();
    assert_eq!(twins, 1);
    assert_eq!(s["progress"]["source"]["existing"]["processed"], 450, "{s}");

    // A second run writes nothing: every page is assessed ahead and none needs a second look.
    let outbox = env.outbox().await;
    let s = run(&small_pages(&env)).await;
    assert_eq!(target(&s, "unchanged"), qualifying - 1, "{s}");
    assert_eq!(env.outbox().await, outbox);
}

#[tokio::test]
async fn a_page_written_in_parts_ends_as_one_transaction_would() {
    // userName from the e-mail address, which two Salesforce users may share.
    let path = shipped_sync_with(|sync| {
        let props = sync["mappings"][0]["properties"].as_array_mut().unwrap();
        let user_name = props
            .iter_mut()
            .find(|p| p["target"] == "userName")
            .unwrap();
        user_name["source"] = json!("Email");
    });
    let env = env_with(1000, &path).await;
    let _ = std::fs::remove_file(&path);
    let users = env.sf_users().await;
    let people: Vec<usize> = (0..users.len())
        .filter(|i| !users[*i]["Email"].as_str().unwrap().starts_with("autoproc"))
        .collect();
    // One user near the start of the page and one near its end (different parts) share
    // an address, so both map to one userName.
    let (a, b) = (people[5], people[people.len() - 5]);
    let shared = users[a]["Email"].as_str().unwrap().to_owned();
    env.sf
        .update(
            users[b]["Id"].as_str().unwrap(),
            &record(json!({"Email": shared})),
        )
        .await
        .unwrap();

    let s = env.recon("").await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    let qualifying = people.len() as u64;
    assert_eq!(target(&s, "created"), qualifying - 1, "{s}");
    assert_eq!(s["statusSummary"]["FAILURE"], 1, "{s}");
    assert_eq!(env.users().await as u64, qualifying - 1);
    assert_eq!(env.links().await as u64, qualifying - 1);
    assert_eq!(env.outbox().await as u64, qualifying - 1);
    let owners: i64 =
        sqlx::query_scalar("SELECT count(*) FROM managed_objects WHERE body->>'userName' = $1")
            .bind(&shared)
            .fetch_one(&env.app.db.pool)
            .await
            .unwrap();
    assert_eq!(owners, 1);
    // Every link points at a stored user, and every stored user is linked.
    let dangling = env
        .scalar(
            "SELECT count(*) FROM links l LEFT JOIN managed_objects m ON m.id = l.second_id
             WHERE m.id IS NULL",
        )
        .await;
    assert_eq!(dangling, 0);
    let s = env.recon("").await;
    assert_eq!(target(&s, "unchanged"), qualifying - 1, "{s}");
    assert_eq!(
        s["statusSummary"]["FAILURE"], 1,
        "the duplicate fails again: {s}"
    );
}

#[tokio::test]
async fn a_page_of_updates_is_written_together_and_one_that_fails_fails_alone() {
    let env = super::support::env(40).await;
    env.recon("").await;
    let people = env.people().await;
    // Ten users renamed in Salesforce, and an eleventh given a user name that a managed user
    // nobody links to already holds.
    for p in &people[..10] {
        let id = p["Id"].as_str().unwrap();
        env.sf
            .update(id, &record(json!({"LastName": format!("Renamed-{id}")})))
            .await
            .unwrap();
    }
    let taken = "taken@idm-sync.test";
    let body = json!({"userName": taken, "givenName": "T", "sn": "Aken",
        "mail": "taken@example.com", "profileId": "00e000000000000AAA"});
    crate::helpers::create_managed(&env.app, &body).await;
    let clash = people[10]["Id"].as_str().unwrap().to_owned();
    env.sf
        .update(&clash, &record(json!({"Username": taken})))
        .await
        .unwrap();
    let outbox = env.outbox().await;

    let s = env.recon("").await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(target(&s, "updated"), 10, "{s}");
    assert_eq!(sit(&s, "CONFIRMED"), people.len() as u64, "{s}");
    assert_eq!(env.outbox().await, outbox + 10, "one outbox row per update");
    for p in &people[..10] {
        let id = p["Id"].as_str().unwrap();
        assert_eq!(env.linked_user(id).await["sn"], format!("Renamed-{id}"));
    }
    assert_ne!(env.linked_user(&clash).await["userName"], taken);
    let run = s["_id"].as_str().unwrap();
    let failed: Vec<(String, String)> = sqlx::query_as(
        "SELECT body->>'sourceObjectId', body->>'message' FROM recon_audit
         WHERE recon_id = $1 AND body->>'status' = 'FAILURE' AND body->>'situation' = 'CONFIRMED'",
    )
    .bind(run)
    .fetch_all(&env.app.db.pool)
    .await
    .unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].0.ends_with(&clash), "{failed:?}");
    assert!(failed[0].1.contains("userName"), "{failed:?}");
}
