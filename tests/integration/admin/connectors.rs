//! Connectors: Save runs OAuth's web-server flow against the emulator (authorize page, code
//! exchange), the token and settings are stored, the test passes, another role picks the
//! saved settings up, and no page ever shows a secret.

use idm_sync::salesforce::{SalesforceClient, Secret};
use reqwest::StatusCode;
use sf_emulator::EmulatorConfig;

use super::support::{Browser, assert_well_formed, http, input_value, page};
use crate::recon::support as recon;
use crate::salesforce::support as sf;

/// Follows Save to the emulator, allows access there, and returns the callback's path.
async fn authorize_at_the_emulator(b: &Browser, org: &str, secret: &str) -> String {
    let saved = b
        .post(
            "/admin/connectors/salesforce",
            &[
                ("login", "custom"),
                ("custom_url", org),
                ("client_id", &EmulatorConfig::default().consumer_key),
                ("client_secret", secret),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let authorize = saved.location.unwrap();
    assert!(
        authorize.starts_with(&format!("{org}/services/oauth2/authorize?")),
        "{authorize}"
    );
    assert!(!authorize.contains(secret));
    let login = page(http().get(&authorize).send().await.unwrap()).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let field = |n: &str| input_value(&login.body, n).unwrap_or_default();
    let allowed = page(
        http()
            .post(format!("{org}/services/oauth2/authorize"))
            .form(&[
                ("client_id", field("client_id")),
                ("redirect_uri", field("redirect_uri")),
                ("state", field("state")),
                ("scope", field("scope")),
                ("username", field("username")),
                ("password", "x".to_owned()),
                ("action", "allow".to_owned()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(allowed.status.is_redirection(), "{}", allowed.body);
    let back = allowed.location.unwrap();
    assert!(
        back.starts_with(&format!("{}/admin/oauth?", b.root)),
        "{back}"
    );
    back[b.root.len()..].to_owned()
}

#[tokio::test]
async fn save_authorizes_through_the_emulator_and_secrets_stay_hidden() {
    let env = recon::env(5).await;
    let org = env._org.base_url().to_owned();
    let defaults = EmulatorConfig::default();
    let b = Browser::login(&env.app).await;
    let before = b.get_ok("/admin/connectors").await;
    assert_well_formed(&before);
    assert!(before.contains("id=\"client-secret\" name=\"client_secret\" value=\"\""));
    assert!(before.contains("conf/provisioner.openicf-salesforce.json"));

    let back = authorize_at_the_emulator(&b, &org, &defaults.consumer_secret).await;
    let done = b.get(&back).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        done.body
            .contains("Salesforce authorized; connector test OK"),
        "{}",
        done.body
    );

    let (client_id, login_url): (String, String) = sqlx::query_as(
        "SELECT client_id, login_url FROM salesforce_connector_settings WHERE system_name = 'salesforce'",
    )
    .fetch_one(&env.app.db.pool)
    .await
    .unwrap();
    assert_eq!(client_id, defaults.consumer_key);
    assert_eq!(login_url, format!("{org}/services/oauth2/token"));
    let (token, instance): (String, Option<String>) = sqlx::query_as(
        "SELECT refresh_token, instance_url FROM salesforce_tokens WHERE system_name = 'salesforce'",
    )
    .fetch_one(&env.app.db.pool)
    .await
    .unwrap();
    assert_ne!(
        token, defaults.refresh_token,
        "a new refresh token from the code exchange"
    );
    assert!(instance.is_some());
    let enabled: bool = sqlx::query_scalar(
        "SELECT enabled FROM salesforce_connector_enabled WHERE system_name = 'salesforce'",
    )
    .fetch_one(&env.app.db.pool)
    .await
    .unwrap();
    assert!(enabled, "authorizing from the UI enables the connector");

    let after = b.get_ok("/admin/connectors?done=authorized").await;
    assert!(
        after.contains("id=\"test-result\" class=\"ok\">OK"),
        "{after}"
    );
    assert!(after.contains("saved from this UI"));
    assert!(after.contains("id=\"connector-status\">connected<"));
    let tested = b.post("/admin/connectors/salesforce/test", &[]).await;
    assert_eq!(tested.status, StatusCode::SEE_OTHER);
    b.get_ok("/admin/connectors?done=tested").await;

    // The callback's state is single-use.
    let replay = b.get(&back).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);

    // Another role (a fresh client on the same database) with a wrong secret and no refresh
    // token in its file works from the saved settings and token.
    let mut cfg = sf::config(&org);
    cfg.client_secret = Secret::new("stale-file-secret");
    cfg.refresh_token = None;
    let other = SalesforceClient::new(cfg, crate::helpers::token_store(&env.app.db.pool)).unwrap();
    other
        .test()
        .await
        .expect("the saved settings and token work in another role");

    for path in [
        "/admin",
        "/admin/users",
        "/admin/mappings",
        "/admin/connectors",
    ] {
        b.get_ok(path).await;
    }
    b.assert_never_shown(&[&defaults.consumer_secret, &token, &defaults.refresh_token]);
}

#[tokio::test]
async fn a_wrong_secret_or_a_foreign_state_changes_nothing() {
    let env = recon::env(3).await;
    let org = env._org.base_url().to_owned();
    let b = Browser::login(&env.app).await;
    let back = authorize_at_the_emulator(&b, &org, "not-the-secret").await;
    let failed = b.get(&back).await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.body);
    assert!(!failed.body.contains("not-the-secret"));
    let saved: i64 = sqlx::query_scalar("SELECT count(*) FROM salesforce_connector_settings")
        .fetch_one(&env.app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        saved, 0,
        "settings are kept only after a successful exchange"
    );

    // A state started by another session is refused for this browser's cookie.
    let other = Browser::login(&env.app).await;
    let back =
        authorize_at_the_emulator(&other, &org, &EmulatorConfig::default().consumer_secret).await;
    let refused = b.get(&back).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        page(
            http()
                .get(format!("{}/admin/oauth?code=x&state=forged", b.root))
                .send()
                .await
                .unwrap()
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn disable_and_enable_reach_rest_and_recon() {
    let env = recon::env(3).await;
    let b = Browser::login(&env.app).await;
    let page_before = b.get_ok("/admin/connectors").await;
    assert!(
        page_before.contains("id=\"connector-enabled\">yes (provisioner file)<"),
        "{page_before}"
    );
    let bad = b
        .post(
            "/admin/connectors/salesforce/enabled",
            &[("enabled", "maybe")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let off = b
        .post(
            "/admin/connectors/salesforce/enabled",
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    assert_eq!(
        off.location.as_deref(),
        Some("/admin/connectors/salesforce?done=disabled")
    );
    let shown = b.get_ok("/admin/connectors?done=disabled").await;
    assert!(shown.contains("id=\"connector-enabled\">no (disabled on this page)<"));
    assert!(shown.contains("id=\"toggle-enabled\" class=\"secondary\">Enable<"));
    let query = env
        .app
        .get("/system/salesforce/User?_queryFilter=true")
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = query.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Connector disabled"),
        "{body}"
    );
    let test: serde_json::Value = env
        .app
        .post("/system/salesforce?_action=test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(test["enabled"], false, "{test}");
    assert_eq!(test["ok"], false, "{test}");
    let run = env
        .app
        .post(&format!("/recon?_action=recon&mapping={}", recon::MAPPING))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(env.users().await, 0, "no run while disabled");
    let ui_run = b
        .post(
            &format!("/admin/mappings/{}/reconcile", recon::MAPPING),
            &[],
        )
        .await;
    assert_eq!(ui_run.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ui_run.body.contains("connector is disabled"));

    let on = b
        .post(
            "/admin/connectors/salesforce/enabled",
            &[("enabled", "true")],
        )
        .await;
    assert_eq!(
        on.location.as_deref(),
        Some("/admin/connectors/salesforce?done=enabled")
    );
    assert!(
        b.get_ok("/admin/connectors")
            .await
            .contains("id=\"connector-enabled\">yes (set on this page)<")
    );
    let query = env
        .app
        .get("/system/salesforce/User?_queryFilter=true")
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), StatusCode::OK);
    let summary = env.recon("").await;
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
}
