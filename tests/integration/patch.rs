//! PATCH and `_action=patch` over REST.

use serde_json::{Value, json};

use crate::helpers::TestApp;

#[tokio::test]
async fn patch_operations_apply_in_order() {
    let app = TestApp::spawn().await;
    let created = app.create_user("patcher").await;
    let id = created["_id"].as_str().unwrap();

    let res = app
        .patch(&format!("/managed/user/{id}"))
        .json(&json!([
            {"operation": "add", "field": "/roles", "value": ["a"]},
            {"operation": "add", "field": "/roles/-", "value": "b"},
            {"operation": "replace", "field": "/sn", "value": "Patched"},
            {"operation": "add", "field": "/logins", "value": 1},
            {"operation": "increment", "field": "/logins", "value": 41},
            {"operation": "copy", "from": "/givenName", "field": "/description"},
            {"operation": "move", "from": "/description", "field": "/city"},
            {"operation": "remove", "field": "/roles", "value": "a"}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["roles"], json!(["b"]));
    assert_eq!(patched["sn"], "Patched");
    assert_eq!(patched["logins"], 42);
    assert_eq!(patched["city"], "Barbara");
    assert!(patched.get("description").is_none());

    // The same through POST ?_action=patch.
    let res = app
        .post(&format!("/managed/user/{id}?_action=patch"))
        .json(&json!([{"operation": "remove", "field": "/city"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.json::<Value>().await.unwrap().get("city").is_none());
    let ops: Vec<String> = app
        .outbox_for(id)
        .await
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(ops, ["create", "update", "update"]);
}

#[tokio::test]
async fn bad_patches_are_400_and_change_nothing() {
    let app = TestApp::spawn().await;
    let created = app.create_user("badpatch").await;
    let id = created["_id"].as_str().unwrap();
    for (body, expected) in [
        (json!({"operation": "replace"}), "array"),
        (
            json!([{"operation": "explode", "field": "/sn", "value": 1}]),
            "unknown operation",
        ),
        (
            json!([{"operation": "increment", "field": "/sn", "value": 1}]),
            "not a number",
        ),
        (
            json!([{"operation": "replace", "field": "/_id", "value": "x"}]),
            "_id",
        ),
        (
            json!([{"op": "replace", "field": "/sn", "value": "x"}]),
            "not valid",
        ),
        // The first operation is valid: still nothing is written.
        (
            json!([{"operation": "replace", "field": "/sn", "value": "ok"},
                   {"operation": "move", "from": "/nope", "field": "/x"}]),
            "does not exist",
        ),
    ] {
        let res = app
            .patch(&format!("/managed/user/{id}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let message = res.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains(expected),
            "{message:?} should mention {expected:?}"
        );
    }
    let now: Value = app.managed_user(id).await;
    assert_eq!(now, created);
    assert_eq!(app.outbox_for(id).await.len(), 1);

    let res = app
        .patch("/managed/user/no-such-user")
        .json(&json!([{"operation": "replace", "field": "/sn", "value": "x"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_patch_that_changes_nothing_keeps_the_revision() {
    let app = TestApp::spawn().await;
    let created = app.create_user("noop").await;
    let id = created["_id"].as_str().unwrap();
    let res = app
        .patch(&format!("/managed/user/{id}"))
        .json(&json!([{"operation": "replace", "field": "/sn", "value": "Jensen"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), created);
    assert_eq!(app.outbox_for(id).await.len(), 1);
}
