//! Bounded input: bodies, patches and URLs a careless or hostile client sends. Each refusal is
//! in IDM's error shape, names the limit, changes nothing, and the server keeps serving.

use serde_json::{Value, json};

use super::{assert_still_serving, peak_rss_kib};
use crate::helpers::{TestApp, user_body};

/// The answer's status and IDM-shaped body.
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], status, "IDM's shape: {body}");
    assert!(body["reason"].is_string(), "{body}");
    (status, body)
}

fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap()
}

/// A user with a given revision, for checking that a refused write changed nothing.
async fn rev_of(app: &TestApp, id: &str) -> String {
    let user: Value = app.managed_user(id).await;
    user["_rev"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_patch_pointer_nested_past_the_limit_is_refused_without_crashing() {
    let app = TestApp::spawn().await;
    let id = app.create_user("deep").await["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = rev_of(&app, &id).await;
    // 300,000 levels: enough to overflow any stack if it were followed.
    let field = "/a".repeat(300_000);
    let (status, body) = answer(
        app.patch(&format!("/managed/user/{id}"))
            .json(&json!([{"operation": "add", "field": field, "value": 1}])),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("the limit is 16"), "{body}");

    // At the limit the pointer works: 16 tokens, 16 levels.
    let field = "/a".repeat(16);
    let res = app
        .patch(&format!("/managed/user/{id}"))
        .json(&json!([{"operation": "add", "field": field, "value": 1}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_ne!(rev_of(&app, &id).await, before);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_patch_that_copies_an_object_into_itself_stops_at_the_size_limit() {
    let app = TestApp::spawn().await;
    let id = app.create_user("grower").await["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The whole object is not a property: it cannot be copied anywhere.
    let (status, body) = answer(
        app.patch(&format!("/managed/user/{id}"))
            .json(&json!([{"operation": "copy", "from": "", "field": "/c"}])),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let seed = json!([{"operation": "add", "field": "/n", "value": {"pad": "y".repeat(10_000)}}]);
    let res = app
        .patch(&format!("/managed/user/{id}"))
        .json(&seed)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seeded = rev_of(&app, &id).await;
    let rss_before = peak_rss_kib(std::process::id());
    // Each copy of /n into a child of itself (alternately /n/a and /n/b, so one does not
    // replace the other) grows the object by 1.6 or more: a hundred would need terabytes.
    let doubling: Vec<Value> = (0..100)
        .map(|i| {
            let field = if i % 2 == 0 { "/n/a" } else { "/n/b" };
            json!({"operation": "copy", "from": "/n", "field": field})
        })
        .collect();
    let (status, body) = answer(app.patch(&format!("/managed/user/{id}")).json(&doubling)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["reason"], "Payload Too Large");
    assert!(message(&body).contains("1048576 bytes"), "{body}");
    assert_eq!(rev_of(&app, &id).await, seeded, "nothing written");
    let grown_mib = peak_rss_kib(std::process::id()).saturating_sub(rss_before) / 1024;
    assert!(
        grown_mib < 100,
        "peak RSS grew by {grown_mib} MiB while refusing the patch"
    );
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn patches_with_too_many_operations_are_refused() {
    let app = TestApp::spawn().await;
    let id = app.create_user("many-ops").await["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ops: Vec<Value> = (0..101)
        .map(|i| json!({"operation": "replace", "field": "/sn", "value": format!("S{i}")}))
        .collect();
    let (status, body) = answer(app.patch(&format!("/managed/user/{id}")).json(&ops)).await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("at most 100 operations"), "{body}");
    let res = app
        .patch(&format!("/managed/user/{id}"))
        .json(&ops[..100])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "100 operations are fine");
}

#[tokio::test]
async fn bodies_nested_past_the_limit_are_refused() {
    let app = TestApp::spawn().await;
    let nested = |depth: usize| {
        let mut v = json!("leaf");
        for _ in 0..depth {
            v = json!({ "a": v });
        }
        v
    };
    for depth in [32, 500] {
        let mut body = user_body(&format!("nested-{depth}"));
        body["extra"] = nested(depth);
        let (status, body) = answer(app.post("/managed/user?_action=create").json(&body)).await;
        assert_eq!(status, 400, "{body}");
        assert!(message(&body).contains("32 levels"), "{body}");
    }
    // Thirty-one levels under a property is thirty-two in all: accepted.
    let mut body = user_body("nested-ok");
    body["extra"] = nested(31);
    let res = app
        .post("/managed/user?_action=create")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn an_oversized_body_answers_413() {
    let app = TestApp::spawn().await;
    let (status, body) = answer(
        app.post("/managed/user?_action=create")
            .header("content-type", "application/json")
            .body(format!(
                "{{\"userName\":\"{}\"}}",
                "x".repeat(1024 * 1024 + 10)
            )),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["reason"], "Payload Too Large");
    assert!(message(&body).contains("1048576 bytes"), "{body}");
    assert_eq!(app.outbox_count().await, 0);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn nul_characters_answer_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let mut body = user_body("nul");
    body["givenName"] = json!("Bar\u{0}bara");
    let (status, res) = answer(app.post("/managed/user?_action=create").json(&body)).await;
    assert_eq!(status, 400);
    assert!(message(&res).contains("/givenName"), "{res}");
    assert!(message(&res).contains("NUL"), "{res}");

    let mut body = user_body("nul-key");
    body["name"] = json!({"fam\u{0}ily": "x"});
    let (status, res) = answer(app.post("/managed/user?_action=create").json(&body)).await;
    assert_eq!(status, 400);
    assert!(message(&res).contains("/name/fam"), "{res}");

    let id = app.create_user("nul-patch").await["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, res) = answer(
        app.patch(&format!("/managed/user/{id}"))
            .json(&json!([{"operation": "replace", "field": "/sn", "value": "a\u{0}"}])),
    )
    .await;
    assert_eq!(status, 400);
    assert!(message(&res).contains("NUL"), "{res}");

    // In the URL: an id, a filter value, a filter written with an escape.
    for path in [
        "/managed/user/a%00b".to_owned(),
        "/managed/user?_queryFilter=userName%20eq%20%22a%00%22".to_owned(),
        "/repo/link?_queryFilter=firstId%20eq%20%22%00%22".to_owned(),
    ] {
        let (status, res) = answer(app.get(&path)).await;
        assert_eq!(status, 400, "{path}: {res}");
        assert!(message(&res).contains("NUL"), "{path}: {res}");
    }
    let (status, res) =
        answer(app.get("/managed/user?_queryFilter=userName%20eq%20%22%5Cu0000%22")).await;
    assert_eq!(status, 400, "{res}");
    assert_eq!(app.outbox_count().await, 1, "only the valid create wrote");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn sort_keys_past_the_limit_answer_400_not_500() {
    let app = TestApp::spawn().await;
    app.create_user("sorted").await;
    for count in [9, 5_000] {
        let keys = vec!["sn"; count].join(",");
        let (status, body) =
            answer(app.get(&format!("/managed/user?_queryFilter=true&_sortKeys={keys}"))).await;
        assert_eq!(status, 400, "{body}");
        assert!(message(&body).contains("the limit is 8"), "{body}");
    }
    let keys = ["sn"; 8].join(",");
    let res = app
        .get(&format!("/managed/user?_queryFilter=true&_sortKeys={keys}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn refusals_axum_makes_itself_are_in_idm_shape_too() {
    let app = TestApp::spawn().await;
    for request in [
        app.get("/managed/user/%FF"),
        app.get("/recon/%FF"),
        app.post("/sync/failures/%C3?_action=retry"),
    ] {
        let what = format!("{request:?}");
        let (status, body) = answer(request).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(message(&body).contains("UTF-8"), "{what}: {body}");
    }
}
