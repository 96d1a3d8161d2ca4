//! CRUD round trips over /openidm/managed/user.

use serde_json::{Value, json};

use crate::helpers::{TestApp, user_body};

#[tokio::test]
async fn ping_answers_without_credentials() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/info/ping")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"_id": "", "state": "ACTIVE_READY", "shortDesc": "OpenIDM ready"})
    );
}

#[tokio::test]
async fn create_read_replace_delete_round_trip() {
    let app = TestApp::spawn().await;

    // Create with a server-assigned id.
    let res = app
        .post("/managed/user?_action=create")
        .json(
            &json!({"userName": "bjensen", "givenName": "Barbara", "sn": "Jensen",
                      "mail": "bjensen@example.com", "profileId": "00e000000000001AAA"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();
    let id = created["_id"].as_str().unwrap().to_owned();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "server-assigned UUID: {id}"
    );
    assert_eq!(location, format!("/openidm/managed/user/{id}"));
    let rev = created["_rev"].as_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{rev}\""));
    // Undeclared properties are kept as given (the sample's profileId).
    assert_eq!(created["profileId"], "00e000000000001AAA");
    let keys: Vec<&String> = created.as_object().unwrap().keys().take(2).collect();
    assert_eq!(keys, ["_id", "_rev"]);

    // Read, with ETag.
    let res = app
        .get(&format!("/managed/user/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
    let read: Value = res.json().await.unwrap();
    assert_eq!(read, created);

    // _fields selects properties; _id and _rev always come.
    let res = app
        .get(&format!("/managed/user/{id}?_fields=sn,mail"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"_id": id, "_rev": rev, "sn": "Jensen", "mail": "bjensen@example.com"})
    );

    // Full replace: properties not sent are gone.
    let res = app
        .put(&format!("/managed/user/{id}"))
        .json(&json!({"userName": "bjensen", "givenName": "Babs", "sn": "Jensen", "mail": "bjensen@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let replaced: Value = res.json().await.unwrap();
    assert_eq!(replaced["givenName"], "Babs");
    assert!(replaced.get("profileId").is_none());
    assert_ne!(replaced["_rev"], created["_rev"]);

    // Delete returns the deleted object; then it is gone.
    let res = app
        .delete(&format!("/managed/user/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), replaced);
    let res = app
        .get(&format!("/managed/user/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], 404);
    assert_eq!(body["reason"], "Not Found");
    let res = app
        .delete(&format!("/managed/user/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn create_with_client_id_and_duplicate_id() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/managed/user?_action=create&_id=bjensen-1")
        .json(&user_body("bjensen"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["_id"], "bjensen-1");
    let res = app
        .post("/managed/user?_action=create&_id=bjensen-1")
        .json(&user_body("other"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    // PUT with an id containing an encoded '/' is refused.
    let res = app
        .put("/managed/user/a%2Fb")
        .json(&user_body("slash"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.outbox_count().await, 1);
}

#[tokio::test]
async fn password_is_hashed_and_never_returned() {
    let app = TestApp::spawn().await;
    let mut body = user_body("pwuser");
    body["password"] = json!("Secr3tPassw0rd");
    let res = app
        .post("/managed/user?_action=create")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert!(created.get("password").is_none());
    let id = created["_id"].as_str().unwrap();
    let stored: String =
        sqlx::query_scalar("SELECT body->>'password' FROM managed_objects WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(stored.starts_with("$argon2"), "stored as a hash");
    assert!(!stored.contains("Secr3t"));
    // Re-sending the same password is not a change.
    let res = app
        .put(&format!("/managed/user/{id}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["_rev"], created["_rev"]);
    // A weak password fails the policies.
    body["password"] = json!("weak");
    let res = app
        .put(&format!("/managed/user/{id}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn bad_requests_answer_400_in_idm_shape_and_write_nothing() {
    let app = TestApp::spawn().await;
    let cases: Vec<(reqwest::RequestBuilder, &str)> = vec![
        (
            app.post("/managed/user?_action=create")
                .header("content-type", "application/json")
                .body("{not json"),
            "not valid",
        ),
        (
            app.post("/managed/user?_action=create")
                .json(&json!(["an", "array"])),
            "JSON object",
        ),
        (
            app.post("/managed/user?_action=frobnicate")
                .json(&user_body("x")),
            "Unknown action",
        ),
        (
            app.post("/managed/user").json(&user_body("x")),
            "_action=create",
        ),
        (
            app.get("/managed/user?_queryFilter=userName%20eq"),
            "Invalid filter",
        ),
        (
            app.get("/managed/user?_queryFilter=true&_bogus=1"),
            "Unrecognized request parameter '_bogus'",
        ),
        (
            app.get("/managed/user?_queryFilter=true&_pageSize=ten"),
            "_pageSize",
        ),
        (app.get("/managed/user"), "_queryFilter"),
        (
            app.get("/managed/user?_queryFilter=true")
                .header("Accept-API-Version", "resource=2.0"),
            "resource=1.0",
        ),
    ];
    for (request, expected) in cases {
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], 400);
        assert_eq!(body["reason"], "Bad Request");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{message:?} should mention {expected:?}"
        );
    }
    assert_eq!(app.outbox_count().await, 0);
    let res = app
        .get("/managed/user?_queryFilter=true")
        .header("Accept-API-Version", "protocol=2.1,resource=1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn unknown_resources_and_methods() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/managed/device?_queryFilter=true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app.get("/nothing/here").send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap()["reason"], "Not Found");
    let res = app
        .req(reqwest::Method::PUT, "/managed/user")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn repository_outage_is_503_without_detail() {
    let app = TestApp::spawn().await;
    app.create_user("before-outage").await;
    // The database disappears under the running server.
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&format!(
        "{}/postgres",
        crate::helpers::pg_server_url()
    ))
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{}\" WITH (FORCE)",
        app.db.name
    )))
    .execute(&mut admin)
    .await
    .unwrap();

    let res = app.client.get(app.url("/info/ping")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["state"], "ACTIVE_NOT_READY");

    let res = app
        .get("/managed/user?_queryFilter=true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 503, "reason": "Service Unavailable", "message": "The repository is unavailable"})
    );
}
