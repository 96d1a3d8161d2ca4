//! Policy validation from managed.json: IDM's 403 with failedPolicyRequirements.

use serde_json::{Value, json};

use crate::helpers::{TestApp, user_body};

fn requirements(body: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for failed in body["detail"]["failedPolicyRequirements"]
        .as_array()
        .unwrap()
    {
        for req in failed["policyRequirements"].as_array().unwrap() {
            out.push((
                failed["property"].as_str().unwrap().to_owned(),
                req["policyRequirement"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

async fn create_expect_403(app: &TestApp, body: Value) -> Vec<(String, String)> {
    let res = app
        .post("/managed/user?_action=create")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "{body}");
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["code"], 403);
    assert_eq!(err["reason"], "Forbidden");
    assert_eq!(err["message"], "Policy validation failed");
    assert_eq!(err["detail"]["result"], false);
    requirements(&err)
}

fn pair(p: &str, r: &str) -> (String, String) {
    (p.to_owned(), r.to_owned())
}

#[tokio::test]
async fn required_and_format_policies() {
    let app = TestApp::spawn().await;
    let failed = create_expect_403(&app, json!({"userName": "only-name"})).await;
    assert_eq!(
        failed,
        [
            pair("givenName", "REQUIRED"),
            pair("sn", "REQUIRED"),
            pair("mail", "REQUIRED")
        ]
    );

    let mut body = user_body("x");
    body["userName"] = json!("has/slash");
    body["mail"] = json!("not-an-email");
    body["accountStatus"] = json!("suspended");
    body["givenName"] = json!("g".repeat(256));
    let failed = create_expect_403(&app, body).await;
    assert_eq!(
        failed,
        [
            pair("userName", "CANNOT_CONTAIN_CHARACTERS"),
            pair("givenName", "MAX_LENGTH"),
            pair("mail", "VALID_EMAIL_ADDRESS_FORMAT"),
            pair("accountStatus", "MATCH_REGEXP"),
        ]
    );

    let mut body = user_body("y");
    body["sn"] = json!("");
    body["userName"] = json!(12);
    let failed = create_expect_403(&app, body).await;
    assert!(failed.contains(&pair("sn", "REQUIRED")), "{failed:?}");
    assert!(
        failed.contains(&pair("userName", "VALID_TYPE")),
        "{failed:?}"
    );
    assert_eq!(app.outbox_count().await, 0);
}

#[tokio::test]
async fn user_name_is_unique_on_create_update_and_patch() {
    let app = TestApp::spawn().await;
    app.create_user("taken").await;
    let other = app.create_user("free").await;
    let id = other["_id"].as_str().unwrap();

    assert_eq!(
        create_expect_403(&app, user_body("taken")).await,
        [pair("userName", "UNIQUE")]
    );

    let res = app
        .put(&format!("/managed/user/{id}"))
        .json(&user_body("taken"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .patch(&format!("/managed/user/{id}"))
        .json(&json!([{"operation": "replace", "field": "/userName", "value": "taken"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Keeping one's own userName is fine.
    let res = app
        .put(&format!("/managed/user/{id}"))
        .json(&user_body("free"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.outbox_count().await, 2);
}

#[tokio::test]
async fn concurrent_creates_of_one_user_name_yield_one_user() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let request = app
            .post("/managed/user?_action=create")
            .json(&user_body("racer"));
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 403),
        "{statuses:?}"
    );
    assert_eq!(app.outbox_count().await, 1);
}
