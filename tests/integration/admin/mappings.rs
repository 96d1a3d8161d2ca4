//! Mappings: both mappings shown; Reconcile and Analyze from the UI run through the recon
//! engine; the run page and its JSON status; the history.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::support::{Browser, assert_well_formed};
use crate::recon::support::{self as recon, MAPPING};

async fn wait(b: &Browser, run_page: &str) -> Value {
    for _ in 0..300 {
        let s = b.get(&format!("{run_page}/status")).await;
        assert_eq!(s.status, StatusCode::OK);
        let v: Value = serde_json::from_str(&s.body).unwrap();
        if v["state"] != "ACTIVE" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the run did not end");
}

#[tokio::test]
async fn reconcile_and_analyze_from_the_ui() {
    let env = recon::env(30).await;
    let b = Browser::login(&env.app).await;
    let page = b.get_ok("/admin/mappings").await;
    assert_well_formed(&page);
    assert!(page.contains("id=\"mapping-systemSalesforceUser_managedUser\""));
    assert!(page.contains("id=\"mapping-managedUser_systemSalesforceUser\""));
    assert!(
        page.contains("<td>ABSENT</td><td>CREATE</td>"),
        "policies listed"
    );

    let analyze = b
        .post(&format!("/admin/mappings/{MAPPING}/analyze"), &[])
        .await;
    assert_eq!(analyze.status, StatusCode::SEE_OTHER);
    let run = analyze.location.unwrap();
    assert!(run.starts_with("/admin/recon/"));
    let s = wait(&b, &run).await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(env.users().await, 0, "analyze changes nothing");

    let started = b
        .post(&format!("/admin/mappings/{MAPPING}/reconcile"), &[])
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER);
    let run = started.location.unwrap();
    let live = b.get_ok(&run).await;
    assert!(live.contains("data-status-url=\"") && live.contains("id=\"run-state\""));
    let s = wait(&b, &run).await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    let absent = s["situationSummary"]["ABSENT"].as_u64().unwrap();
    assert!(absent > 0);
    assert_eq!(env.users().await as u64, absent);

    let done = b.get_ok(&run).await;
    assert_well_formed(&done);
    assert!(done.contains("data-state=\"SUCCESS\""));
    assert!(done.contains(&format!(
        "<tr id=\"situation-ABSENT\"><th scope=\"row\">ABSENT</th><td>{absent}</td></tr>"
    )));
    assert!(done.contains("id=\"status-SUCCESS\""));
    assert!(done.contains("id=\"run-total-duration\""));

    // A reconciled user's page links to its Salesforce user.
    let sf_id: String = sqlx::query_scalar("SELECT first_id FROM links LIMIT 1")
        .fetch_one(&env.app.db.pool)
        .await
        .unwrap();
    let user = env.linked_user(&sf_id).await;
    let user_page = b
        .get_ok(&format!("/admin/users/{}", user["_id"].as_str().unwrap()))
        .await;
    assert_well_formed(&user_page);
    assert!(
        user_page.contains(&format!("/{sf_id}\" rel=\"noopener\">{sf_id}</a>")),
        "{user_page}"
    );

    // The outbound mapping's Re-queue re-enqueues the linked users that lag.
    let id = user["_id"].as_str().unwrap();
    let res = env
        .app
        .patch(&format!("/managed/user/{id}"))
        .json(&serde_json::json!([{"operation": "replace", "field": "/sn", "value": "Lagging"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let resync = b
        .post(
            "/admin/mappings/managedUser_systemSalesforceUser/resync",
            &[],
        )
        .await;
    assert_eq!(resync.status, StatusCode::SEE_OTHER);
    let queued = b.get_ok(resync.location.as_deref().unwrap()).await;
    assert!(queued.contains("1 user queued for Salesforce."), "{queued}");
    assert_eq!(env.app.outbox_for(id).await.last().unwrap().0, "sync");

    // The outbound mapping reconciles from the UI too: Analyze reads Salesforce, queues nothing.
    let page = b.get_ok("/admin/mappings").await;
    assert!(page.contains("id=\"analyze-managedUser_systemSalesforceUser\""));
    let rows = env.outbox().await;
    let analyze = b
        .post(
            "/admin/mappings/managedUser_systemSalesforceUser/analyze",
            &[],
        )
        .await;
    assert_eq!(analyze.status, StatusCode::SEE_OTHER);
    let s = wait(&b, &analyze.location.unwrap()).await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert!(
        s["situationSummary"]["CONFIRMED"].as_u64().unwrap() > 0,
        "{s}"
    );
    assert_eq!(env.outbox().await, rows, "analyze queues nothing");

    let history = b.get_ok("/admin/mappings").await;
    let id = run.trim_start_matches("/admin/recon/");
    assert!(history.contains(&format!("href=\"/admin/recon/{id}\"")));
    assert!(history.contains("(analyze)"));
    assert_eq!(
        b.get("/admin/recon/no-such-run").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.post(&format!("/admin/mappings/{MAPPING}/explode"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_mappings_event_scripts_are_listed() {
    let sync = recon::shipped_sync_with(|sync| {
        sync["mappings"][0]["onCreate"] =
            serde_json::json!({"type": "text/javascript", "source": "target;"});
    });
    let env = recon::env_with(0, &sync).await;
    let _ = std::fs::remove_file(&sync);
    let b = Browser::login(&env.app).await;
    let page = b.get_ok("/admin/mappings").await;
    assert_well_formed(&page);
    assert!(
        page.contains("<h3>Event scripts</h3><p>onCreate</p>"),
        "{page}"
    );
    assert_eq!(
        page.matches("<h3>Event scripts</h3>").count(),
        1,
        "only the mapping with one"
    );
}
