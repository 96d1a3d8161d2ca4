//! Authentication: IDM headers, HTTP Basic, and 401 in IDM's shape everywhere but the ping.

use serde_json::{Value, json};

use crate::helpers::{ADMIN, TestApp};

async fn assert_denied(res: reqwest::Response) {
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"code": 401, "reason": "Unauthorized", "message": "Access Denied"})
    );
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let app = TestApp::spawn().await;
    let url = app.url("/managed/user?_queryFilter=true");
    assert_denied(app.client.get(&url).send().await.unwrap()).await;
    assert_denied(
        app.client
            .get(&url)
            .header("X-OpenIDM-Username", ADMIN.0)
            .header("X-OpenIDM-Password", "wrong")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_denied(
        app.client
            .get(&url)
            .header("X-OpenIDM-Username", "someone")
            .header("X-OpenIDM-Password", ADMIN.1)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_denied(
        app.client
            .get(&url)
            .basic_auth(ADMIN.0, Some("nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Unknown paths do not reveal themselves to the unauthenticated.
    assert_denied(
        app.client
            .get(app.url("/no/such/thing"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Writes are refused too, and write nothing.
    let res = app
        .client
        .post(app.url("/managed/user?_action=create"))
        .json(&crate::helpers::user_body("intruder"))
        .send()
        .await
        .unwrap();
    assert_denied(res).await;
    assert_eq!(app.outbox_count().await, 0);

    let res = app
        .client
        .get(&url)
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .get("/managed/user?_queryFilter=true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn hashed_admin_password_from_conf() {
    let dir = crate::helpers::TempDir::new("idm-conf");
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    std::fs::copy(conf.join("managed.json"), dir.join("managed.json")).unwrap();
    let hash = bcrypt_hash("Str0ng-admin");
    std::fs::write(
        dir.join("authentication.json"),
        json!({"adminAccount": {"username": "admin", "password": hash}}).to_string(),
    )
    .unwrap();
    let app = TestApp::spawn_with_conf(dir.0.clone()).await;
    let url = app.url("/managed/user?_queryFilter=true");
    let ok = app
        .client
        .get(&url)
        .header("X-OpenIDM-Username", "admin")
        .header("X-OpenIDM-Password", "Str0ng-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_denied(
        app.client
            .get(&url)
            .basic_auth("admin", Some("str0ng-admin"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_denied(
        app.get("/managed/user?_queryFilter=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
}

fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}
