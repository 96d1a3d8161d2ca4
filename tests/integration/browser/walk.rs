//! The sample's walk in a real headless Chromium: log in, connect the connector through the
//! emulator's authorize page, reconcile, find a user, edit it and see Salesforce follow,
//! create one, retry a sync failure, log out. Every Admin UI page on the way is screenshotted
//! and checked for horizontal scrolling and unnamed controls.

use std::time::Duration;

use serde_json::{Value, json};
use sf_emulator::EmulatorConfig;

use super::webdriver::Browser;
use crate::admin::support::root;
use crate::helpers::ADMIN;
use crate::recon::support::MAPPING;
use crate::worker::{env, wait_until};

#[tokio::test]
async fn the_sample_walk_in_a_real_browser() {
    let env = env(30).await;
    let worker = env.spawn_worker();
    let root = root(&env.app);
    let org = env.org.base_url().to_owned();
    let b = Browser::start("sample-walk").await;

    // Nothing but the log-in page for a stranger.
    b.goto(&format!("{root}/admin/users")).await;
    b.find("#login-form").await;
    assert!(b.url().await.contains("/admin/login"), "{}", b.url().await);
    b.check_page("login").await;
    b.type_into("#username", ADMIN.0).await;
    b.type_into("#password", "not-the-password").await;
    b.click("#login").await;
    b.wait_text("#login-error", "a refusal", |t| !t.is_empty())
        .await;
    b.type_into("#username", ADMIN.0).await;
    b.type_into("#password", ADMIN.1).await;
    b.click("#login").await;
    b.find("#logout").await;
    b.check_page("dashboard").await;

    // Connectors: Save sends the browser to the org, Allow brings it back connected.
    b.click("#nav-connectors").await;
    b.find("#connector-form").await;
    b.check_page("connectors").await;
    let emulator = EmulatorConfig::default();
    b.click("#login-custom").await;
    b.type_into("#custom-url", &org).await;
    b.type_into("#client-id", &emulator.consumer_key).await;
    b.type_into("#client-secret", &emulator.consumer_secret)
        .await;
    b.click("#save-connector").await;
    b.find("button[value=allow]").await;
    assert!(b.url().await.starts_with(&org), "{}", b.url().await);
    b.screenshot("salesforce-authorize").await;
    b.click("button[value=allow]").await;
    let result = b
        .wait_text("#oauth-result", "a result", |t| !t.is_empty())
        .await;
    assert!(
        result.starts_with("Salesforce authorized; connector test OK"),
        "{result}"
    );
    b.click("#continue").await;
    b.wait_text("#test-result", "the test passed", |t| t.starts_with("OK"))
        .await;
    assert_eq!(b.text("#connector-status").await, "connected");
    b.check_page("connector-connected").await;

    // Mappings: Reconcile, the run page follows it live and then shows the summary.
    b.click("#nav-mappings").await;
    b.find(&format!("#mapping-{MAPPING}")).await;
    b.check_page("mappings").await;
    b.click(&format!("#reconcile-{MAPPING}")).await;
    b.find("#run").await;
    b.wait_text("#run-state", "the end of the run", |t| t != "ACTIVE")
        .await;
    b.find("#summary").await;
    assert_eq!(b.text("#run-state").await, "SUCCESS");
    let managed = env.scalar("SELECT count(*) FROM managed_objects").await;
    assert!(
        managed >= 25,
        "the recon created the org's users: {managed}"
    );
    let absent = b.text("#situation-ABSENT td").await;
    assert_eq!(absent, managed.to_string());
    assert_eq!(b.text("#status-FAILURE td").await, "0");
    b.check_page("recon-summary").await;

    // Users: search one, open it, edit its last name; Salesforce follows.
    let (id, sn): (String, String) = sqlx::query_as(
        "SELECT id, body->>'sn' FROM managed_objects ORDER BY body->>'userName' LIMIT 1",
    )
    .fetch_one(&env.app.db.pool)
    .await
    .unwrap();
    b.click("#nav-users").await;
    b.find("#user-table").await;
    b.check_page("users").await;
    b.type_into("#q", &sn).await;
    b.click("#search").await;
    b.wait_text("#user-count", "a narrowed list", |t| {
        t != format!("{managed} users")
    })
    .await;
    b.check_page("user-search").await;
    b.click(&format!("#user-table a[href='/admin/users/{id}']"))
        .await;
    b.find("#user-form").await;
    b.check_page("user-detail").await;
    b.type_into("#f-sn", "Browserwalk").await;
    b.click("#save").await;
    b.wait_text("#notice", "saved", |t| t.starts_with("Saved."))
        .await;
    let sf = env.wait_synced(&id).await;
    assert_eq!(sf["LastName"], "Browserwalk", "{sf}");
    b.goto(&format!("{root}/admin/users/{id}")).await;
    b.wait_text("#last-sync", "the sync", |t| t.contains("SUCCESS"))
        .await;
    b.check_page("user-synced").await;

    // Create one: it appears in Salesforce with the mapping's defaults.
    b.click("#nav-users").await;
    b.click("#new-user").await;
    b.find("#user-form").await;
    b.check_page("user-new").await;
    let fields = [
        ("#f-userName", "walk.new@idm-sync.test"),
        ("#f-givenName", "Walkerina"),
        ("#f-sn", "New"),
        ("#f-mail", "walk.new@idm-sync.test"),
        ("#f-profileId", env.profile.as_str()),
    ];
    for (css, value) in fields {
        b.type_into(css, value).await;
    }
    b.click("#save").await;
    b.wait_text("#notice", "created", |t| t.starts_with("Created."))
        .await;
    let new_id = b.text("#user-id").await;
    let sf = env.wait_synced(&new_id).await;
    assert_eq!(sf["Username"], "walk.new@idm-sync.test");
    assert_eq!(sf["Alias"], "Walkerin");
    assert_eq!(sf["TimeZoneSidKey"], "America/Los_Angeles");

    // A sync failure on the dashboard, fixed in Salesforce, retried from the UI.
    let dup = env.create("WALK.NEW@idm-sync.test").await;
    wait_until("a sync failure", async || {
        env.failures("true").await["resultCount"] == 1
    })
    .await;
    b.click("#nav-dashboard").await;
    b.find("#failure-table").await;
    assert!(
        b.text("#failure-table")
            .await
            .contains("DUPLICATE_USERNAME"),
        "{}",
        b.text("#failure-table").await
    );
    b.check_page("dashboard-failure").await;
    let first = env.linked(&new_id).await.unwrap();
    env.sf
        .update(
            &first,
            &crate::recon::support::record(json!({"Username": "walk.renamed@idm-sync.test"})),
        )
        .await
        .unwrap();
    b.click("#failure-table button[name=retry]").await;
    b.find("#notice").await;
    let sf = env.wait_synced(&dup).await;
    assert_eq!(sf["Username"], "WALK.NEW@idm-sync.test");
    wait_until("the failure cleared", async || {
        env.failures("true").await["resultCount"] == 0
    })
    .await;
    b.goto(&format!("{root}/admin")).await;
    b.find("#no-failures").await;
    b.check_page("dashboard-clear").await;

    // Names that hold markup render as text on every page that shows them (list, user page,
    // its access section, the dashboard's failure naming the grant): no element, no script.
    let markup = "<img src=x onerror=\"window.__xss=1\">";
    let mut body = crate::helpers::user_body("xss.walk");
    body["givenName"] = json!(markup);
    body["sn"] = json!("Markup<script>window.__xss=2</script>");
    body["permissionSets"] = json!([markup]);
    body["profileId"] = json!(env.profile);
    body["userName"] = json!("xss.walk@idm-sync.test");
    let xss = crate::helpers::create_managed(&env.app, &body).await;
    let inert = async |page: &str| {
        let clean: Value = b
            .script(
                "return window.__xss === undefined \
                 && document.querySelectorAll('img[src=\"x\"]').length === 0 \
                 && document.body.textContent.includes('<img src=x')",
                json!([]),
            )
            .await;
        let parts: Value = b
            .script(
                "return [window.__xss === undefined, \
                 document.querySelectorAll('img[src=\"x\"]').length, \
                 document.querySelector('main') ? document.querySelector('main').textContent.slice(0, 3000) : '']",
                json!([]),
            )
            .await;
        assert_eq!(
            clean,
            json!(true),
            "{page}: markup in a name became markup: {parts}"
        );
    };
    b.goto(&format!("{root}/admin/users?q=Markup")).await;
    b.find("#user-table").await;
    inert("users").await;
    b.goto(&format!("{root}/admin/users/{xss}")).await;
    b.find("#access-form").await;
    inert("user").await;
    wait_until("the refused grant listed", async || {
        env.failures("true").await["resultCount"] == 1
    })
    .await;
    b.goto(&format!("{root}/admin")).await;
    b.find("#failure-table").await;
    inert("dashboard").await;

    // Logout ends the session: the next page is the log-in page again.
    b.click("#logout").await;
    b.find("#login-form").await;
    b.goto(&format!("{root}/admin/mappings")).await;
    b.find("#login-form").await;
    let left: Value = b.script("return document.cookie", json!([])).await;
    assert_eq!(left, json!(""), "the session cookie is HttpOnly");
    b.close().await;
    tokio::time::timeout(Duration::from_secs(10), worker.stop())
        .await
        .unwrap();
}
