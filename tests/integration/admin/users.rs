//! Manage > User: search, paging, edit (outbox row, visible over REST), validation errors
//! inline, create and delete.

use reqwest::StatusCode;

use super::support::{Browser, assert_well_formed, input_value};
use crate::helpers::TestApp;

#[tokio::test]
async fn search_and_paging() {
    let app = TestApp::spawn().await;
    for i in 0..25 {
        app.create_user(&format!("user{i:02}")).await;
    }
    app.create_user("zed.smith").await;
    let b = Browser::login(&app).await;
    let first = b.get_ok("/admin/users").await;
    assert_well_formed(&first);
    assert!(first.contains("26 users"));
    assert!(first.contains("Page 1 of 2"));
    assert!(first.contains(">user00<") && first.contains(">user19<"));
    assert!(!first.contains(">user20<"));
    assert!(first.contains("id=\"next-page\""));
    let second = b.get_ok("/admin/users?page=1").await;
    assert!(second.contains(">user20<") && second.contains(">zed.smith<"));
    assert!(!second.contains(">user19<"));
    assert!(second.contains("id=\"prev-page\""));

    let found = b.get_ok("/admin/users?q=zed").await;
    assert!(found.contains("1 users") && found.contains(">zed.smith<"));
    // By mail and by last name (every test user is "Jensen").
    assert!(
        b.get_ok("/admin/users?q=user07%40example")
            .await
            .contains(">user07<")
    );
    assert!(b.get_ok("/admin/users?q=Jensen").await.contains("26 users"));
    // Hostile search text is escaped, not rendered.
    let hostile = b.get_ok("/admin/users?q=%3Cscript%3E%22").await;
    assert!(hostile.contains("value=\"&lt;script&gt;&quot;\""));
    assert!(!hostile.contains("<script>\""));
}

#[tokio::test]
async fn edit_writes_an_outbox_row_and_shows_policy_errors_inline() {
    let app = TestApp::spawn().await;
    let user = app.create_user("bjensen").await;
    let id = user["_id"].as_str().unwrap().to_owned();
    let res = app
        .patch(&format!("/managed/user/{id}"))
        .json(&serde_json::json!([{"operation": "add", "field": "/postalAddress", "value": "<b>1 Main St</b>"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let b = Browser::login(&app).await;
    let page = b.get_ok(&format!("/admin/users/{id}")).await;
    assert_well_formed(&page);
    assert!(
        page.contains("<th scope=\"row\">postalAddress</th><td>&lt;b&gt;1 Main St&lt;/b&gt;</td>")
    );
    assert_eq!(input_value(&page, "givenName").as_deref(), Some("Barbara"));
    assert!(page.contains("Not linked to a Salesforce user"));
    let rev = input_value(&page, "rev").unwrap();
    let before = app.outbox_for(&id).await.len();

    let form = |given: &'static str, mail: &'static str, rev: String| {
        vec![
            ("rev", rev),
            ("userName", "bjensen".to_owned()),
            ("givenName", given.to_owned()),
            ("sn", "Jensen".to_owned()),
            ("mail", mail.to_owned()),
            ("password", String::new()),
        ]
    };
    let fields = form("Babs", "bjensen@example.com", rev.clone());
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = b.post(&format!("/admin/users/{id}"), &refs).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let outbox = app.outbox_for(&id).await;
    assert_eq!(outbox.len(), before + 1);
    assert_eq!(outbox.last().unwrap().0, "update");
    let now: serde_json::Value = app.managed_user(&id).await;
    assert_eq!(now["givenName"], "Babs");
    let shown = b.get_ok(saved.location.as_deref().unwrap()).await;
    assert!(shown.contains("Saved."));
    assert_eq!(input_value(&shown, "givenName").as_deref(), Some("Babs"));

    // A policy failure: shown next to the field, nothing written.
    let new_rev = input_value(&shown, "rev").unwrap();
    let fields = form("Babs", "not-an-email", new_rev.clone());
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bad = b.post(&format!("/admin/users/{id}"), &refs).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("id=\"err-mail\""), "{}", bad.body);
    assert!(bad.body.contains("aria-invalid=\"true\""));
    assert_eq!(
        input_value(&bad.body, "mail").as_deref(),
        Some("not-an-email")
    );
    assert_eq!(app.outbox_for(&id).await.len(), before + 1);

    // A stale revision: refused, nothing written.
    let fields = form("Stale", "bjensen@example.com", rev);
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stale = b.post(&format!("/admin/users/{id}"), &refs).await;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST);
    assert!(stale.body.contains("Someone else changed this user"));
    assert_eq!(app.outbox_for(&id).await.len(), before + 1);
}

#[tokio::test]
async fn create_and_delete() {
    let app = TestApp::spawn().await;
    let b = Browser::login(&app).await;
    let form = b.get_ok("/admin/users/new").await;
    assert_well_formed(&form);
    assert!(form.contains("<label for=\"f-userName\">"));

    let missing = b
        .post(
            "/admin/users",
            &[("userName", "newbie"), ("mail", "newbie@example.com")],
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.body.contains("id=\"err-sn\""), "{}", missing.body);
    assert_eq!(app.outbox_count().await, 0);

    // A NUL character in any field of any form is refused before a handler runs.
    let nul = b
        .post(
            "/admin/users",
            &[
                ("userName", "newbie"),
                ("givenName", "Ne\0w"),
                ("sn", "Bie"),
                ("mail", "newbie@example.com"),
            ],
        )
        .await;
    assert_eq!(nul.status, StatusCode::BAD_REQUEST);
    assert!(
        nul.body.contains("givenName contains a NUL"),
        "{}",
        nul.body
    );
    assert_eq!(app.outbox_count().await, 0);

    let created = b
        .post(
            "/admin/users",
            &[
                ("userName", "newbie"),
                ("givenName", "New"),
                ("sn", "Bie"),
                ("mail", "newbie@example.com"),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let location = created.location.unwrap();
    let id = location
        .trim_start_matches("/admin/users/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.outbox_for(&id).await,
        vec![("create".to_owned(), app.outbox_for(&id).await[0].1)]
    );
    let page = b.get_ok(&location).await;
    assert!(page.contains("Created."));

    let deleted = b.post(&format!("/admin/users/{id}/delete"), &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get(&format!("/managed/user/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(app.outbox_for(&id).await.last().unwrap().0, "delete");
    assert_eq!(
        b.get(&format!("/admin/users/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Pick lists of a user's grants from the connector's catalog; saving patches only the
/// kinds that changed; without a readable catalog what the user holds is still listed.
#[tokio::test]
async fn access_is_picked_from_the_catalog() {
    let env = crate::recon::support::env(0).await;
    let app = &env.app;
    let mut body = crate::helpers::user_body("picker");
    body["permissionSets"] = serde_json::json!(["Sales_Operations"]);
    body["userRole"] = serde_json::json!("CEO");
    let id = crate::helpers::create_managed(app, &body).await;
    let b = Browser::login(app).await;
    let page = b.get_ok(&format!("/admin/users/{id}")).await;
    assert_well_formed(&page);
    assert!(page.contains("system/salesforce"), "{page}");
    let boxed = |name: &str, checked: bool| {
        let mark = if checked { " checked" } else { "" };
        format!("name=\"permissionSets\" value=\"{name}\"{mark}>")
    };
    assert!(page.contains(&boxed("Sales_Operations", true)), "{page}");
    assert!(page.contains(&boxed("Report_Builder", false)), "{page}");
    assert!(page.contains("name=\"publicGroups\" value=\"Sales_Team\">"));
    assert!(page.contains("<option value=\"CEO\" selected>CEO</option>"));
    assert!(page.contains("<option value=\"VP_Sales\">"));
    let rev = input_value(&page, "rev").unwrap();
    let before = app.outbox_for(&id).await.len();

    let saved = b
        .post(
            &format!("/admin/users/{id}/access"),
            &[
                ("rev", rev.as_str()),
                ("permissionSets", "Report_Builder"),
                ("permissionSets", "Sales_Operations"),
                ("userRole", "VP_Sales"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(app.outbox_for(&id).await.len(), before + 1);
    let now: serde_json::Value = app.managed_user(&id).await;
    assert_eq!(
        now["permissionSets"],
        serde_json::json!(["Report_Builder", "Sales_Operations"])
    );
    assert_eq!(now["userRole"], "VP_Sales");
    // Named nowhere before and nothing picked: still no wish.
    assert!(now.get("publicGroups").is_none(), "{now}");

    // A stale revision saves nothing.
    let stale = b
        .post(
            &format!("/admin/users/{id}/access"),
            &[("rev", rev.as_str()), ("userRole", "CEO")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
    assert!(stale.location.as_deref().unwrap().ends_with("done=stale"));
    assert_eq!(app.outbox_for(&id).await.len(), before + 1);

    // No reachable connector: the held names are listed, the reason said.
    let offline = TestApp::spawn().await;
    let mut body = crate::helpers::user_body("offline");
    body["permissionSets"] = serde_json::json!(["Held_<Set>"]);
    let id = crate::helpers::create_managed(&offline, &body).await;
    let b = Browser::login(&offline).await;
    let page = b.get_ok(&format!("/admin/users/{id}")).await;
    assert_well_formed(&page);
    assert!(page.contains("The catalog cannot be read"), "{page}");
    assert!(
        page.contains("value=\"Held_&lt;Set&gt;\" checked>"),
        "{page}"
    );
}
