//! Revision rules: If-Match, If-None-Match, the 412 paths, and concurrent writers.

use serde_json::{Value, json};

use crate::helpers::{TestApp, user_body};

#[tokio::test]
async fn put_if_none_match_star_creates_only() {
    let app = TestApp::spawn().await;
    let res = app
        .put("/managed/user/u1")
        .header("If-None-Match", "*")
        .json(&user_body("u1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["location"], "/openidm/managed/user/u1");
    let res = app
        .put("/managed/user/u1")
        .header("If-None-Match", "*")
        .json(&user_body("u1-again"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["reason"], "Precondition Failed");
    assert!(body["message"].as_str().unwrap().contains("already exists"));
    // If-None-Match with a revision on PUT is not meaningful.
    let res = app
        .put("/managed/user/u2")
        .header("If-None-Match", "\"3\"")
        .json(&user_body("u2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.outbox_for("u1").await.len(), 1);
}

#[tokio::test]
async fn put_if_match_updates_only_at_that_revision() {
    let app = TestApp::spawn().await;
    let created = app.create_user("rev-user").await;
    let id = created["_id"].as_str().unwrap();
    let rev = created["_rev"].as_str().unwrap();

    let mut body = user_body("rev-user");
    body["sn"] = json!("Changed");
    let res = app
        .put(&format!("/managed/user/{id}"))
        .header("If-Match", "\"999999\"")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    let message = res.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        message,
        format!(
            "Update rejected as current Object revision {rev} is different than expected by caller (999999), the object has changed since retrieval."
        )
    );

    let res = app
        .put(&format!("/managed/user/{id}"))
        .header("If-Match", format!("\"{rev}\""))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["sn"], "Changed");
    let new_rev = updated["_rev"].as_str().unwrap();
    assert_ne!(new_rev, rev);
    assert!(new_rev.parse::<i64>().unwrap() > rev.parse::<i64>().unwrap());

    // If-Match on a missing object is 404; If-Match: * also requires the object to exist.
    for header in ["\"1\"", "*"] {
        let res = app
            .put("/managed/user/missing")
            .header("If-Match", header)
            .json(&user_body("missing"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "If-Match: {header}");
    }
    // Neither header: upsert creates.
    let res = app
        .put("/managed/user/upserted")
        .json(&user_body("upserted"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .put("/managed/user/upserted")
        .json(&user_body("upserted2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn patch_and_delete_honor_if_match() {
    let app = TestApp::spawn().await;
    let created = app.create_user("pd").await;
    let id = created["_id"].as_str().unwrap();
    let rev = created["_rev"].as_str().unwrap();
    let op = json!([{"operation": "replace", "field": "/sn", "value": "Other"}]);

    let res = app
        .patch(&format!("/managed/user/{id}"))
        .header("If-Match", "\"999999\"")
        .json(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    let res = app
        .delete(&format!("/managed/user/{id}"))
        .header("If-Match", "\"999999\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    assert_eq!(
        app.outbox_for(id).await.len(),
        1,
        "failed writes leave no outbox row"
    );

    let res = app
        .patch(&format!("/managed/user/{id}"))
        .header("If-Match", format!("\"{rev}\""))
        .json(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rev2 = res.json::<Value>().await.unwrap()["_rev"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .delete(&format!("/managed/user/{id}"))
        .header("If-Match", format!("\"{rev2}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn conditional_get_and_revision_never_reused() {
    let app = TestApp::spawn().await;
    let created = app.create_user("cg").await;
    let id = created["_id"].as_str().unwrap();
    let rev = created["_rev"].as_str().unwrap();
    let res = app
        .get(&format!("/managed/user/{id}"))
        .header("If-None-Match", format!("\"{rev}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // Deleting and re-creating the same id never hands out an old revision.
    app.delete(&format!("/managed/user/{id}"))
        .send()
        .await
        .unwrap();
    let res = app
        .put(&format!("/managed/user/{id}"))
        .json(&user_body("cg"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let again: Value = res.json().await.unwrap();
    assert_ne!(again["_rev"], created["_rev"]);
}

#[tokio::test]
async fn fifty_concurrent_if_match_updates_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let created = app.create_user("race").await;
    let id = created["_id"].as_str().unwrap().to_owned();
    let rev = created["_rev"].as_str().unwrap().to_owned();

    let mut tasks = Vec::new();
    for i in 0..50 {
        let request = app
            .patch(&format!("/managed/user/{id}"))
            .header("If-Match", format!("\"{rev}\""))
            .json(&json!([{"operation": "replace", "field": "/description", "value": format!("writer {i}")}]));
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        49,
        "{statuses:?}"
    );
    // One create and exactly one update in the outbox.
    let ops: Vec<String> = app
        .outbox_for(&id)
        .await
        .into_iter()
        .map(|(op, _)| op)
        .collect();
    assert_eq!(ops, ["create", "update"]);
}
