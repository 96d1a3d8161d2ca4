//! OAuth: grants, errors, rotation, revoke, the authorize page, token expiry.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use sf_emulator::EmulatorConfig;

use super::support::{V, client, org, org_with, refresh, start};

const KEY: &str = "idm-sync-emulator-key";
const SECRET: &str = "idm-sync-emulator-secret";
const RT: &str = "idm-sync-emulator-refresh-token";

async fn token_call(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .post(format!("{base}/services/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn refresh_grant_answers_like_salesforce() {
    let org = org(5).await;
    let body = refresh(&org.http, &org.base, RT).await;
    let obj = body.as_object().unwrap();
    for k in [
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ] {
        assert!(obj.contains_key(k), "missing {k}: {body}");
    }
    assert!(!obj.contains_key("expires_in"));
    assert!(!obj.contains_key("refresh_token"), "no rotation by default");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], org.base.as_str());
    let issued = body["issued_at"].as_str().expect("issued_at is a string");
    assert_eq!(issued.len(), 13);
    assert!(issued.parse::<u64>().is_ok());
    let id = body["id"].as_str().unwrap();
    let org_id = org.handle().org_id();
    assert!(
        id.starts_with(&format!("{}/id/{org_id}/005", org.base)),
        "{id}"
    );
    let sig = base64::engine::general_purpose::STANDARD
        .decode(body["signature"].as_str().unwrap())
        .unwrap();
    assert_eq!(sig.len(), 32);
    assert!(
        body["access_token"]
            .as_str()
            .unwrap()
            .starts_with(&org_id[..15])
    );
    // The token works on data calls.
    let r = org.get("limits").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn client_credentials_in_basic_auth_and_client_credentials_grant() {
    let running = start(EmulatorConfig {
        users: 3,
        ..Default::default()
    })
    .await;
    let base = running.base_url().to_owned();
    let r = client()
        .post(format!("{base}/services/oauth2/token"))
        .basic_auth(KEY, Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", RT)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = token_call(
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", KEY),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none());
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn token_endpoint_errors() {
    let running = start(EmulatorConfig {
        users: 3,
        ..Default::default()
    })
    .await;
    let base = running.base_url().to_owned();
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", KEY),
                ("client_secret", SECRET),
                ("refresh_token", "nope"),
            ],
            "invalid_grant",
            "expired access/refresh token",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", KEY),
                ("client_secret", "wrong"),
                ("refresh_token", RT),
            ],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", "other"),
                ("client_secret", SECRET),
                ("refresh_token", RT),
            ],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", KEY),
                ("client_secret", SECRET),
            ],
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (
            vec![("client_id", KEY)],
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", KEY),
                ("client_secret", SECRET),
                ("code", "bogus"),
                ("redirect_uri", "http://x"),
            ],
            "invalid_grant",
            "invalid authorization code",
        ),
    ];
    for (form, error, description) in cases {
        let (status, body) = token_call(&base, &form).await;
        assert_eq!(status, 400, "{form:?}");
        assert_eq!(body["error"], error, "{form:?}");
        assert_eq!(body["error_description"], description, "{form:?}");
    }
    let stats = running.handle().stats();
    assert_eq!(stats.token_calls, 6);
}

#[tokio::test]
async fn rotation_issues_a_new_refresh_token_and_kills_the_old_one() {
    let org = org_with(EmulatorConfig {
        users: 3,
        rotate_refresh_tokens: true,
        ..Default::default()
    })
    .await;
    // org_with already used RT once: it is rotated out. Replaying it revokes the whole family.
    let (status, body) = token_call(
        &org.base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", KEY),
            ("client_secret", SECRET),
            ("refresh_token", RT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The family's access token died with it.
    assert_eq!(org.get("limits").send().await.unwrap().status(), 401);

    // A fresh family through the authorization-code flow, then a clean rotation chain.
    let running = start(EmulatorConfig {
        users: 3,
        rotate_refresh_tokens: true,
        ..Default::default()
    })
    .await;
    let base = running.base_url().to_owned();
    let first = refresh(&client(), &base, RT).await;
    let rt1 = first["refresh_token"]
        .as_str()
        .expect("rotation returns a refresh token")
        .to_owned();
    assert_ne!(rt1, RT);
    let second = refresh(&client(), &base, &rt1).await;
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt2, rt1);
    // rt1 no longer works (and its replay revokes rt2).
    let (status, _) = token_call(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", KEY),
            ("client_secret", SECRET),
            ("refresh_token", &rt1),
        ],
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = token_call(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", KEY),
            ("client_secret", SECRET),
            ("refresh_token", &rt2),
        ],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn revoke_access_and_refresh_tokens() {
    let org = org(3).await;
    let r = org
        .http
        .post(format!("{}/services/oauth2/revoke", org.base))
        .form(&[("token", org.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(org.get("limits").send().await.unwrap().status(), 401);
    // Revoking the refresh token kills it and its access tokens.
    let fresh = refresh(&org.http, &org.base, RT).await;
    let access = fresh["access_token"].as_str().unwrap();
    let r = org
        .http
        .post(format!("{}/services/oauth2/revoke", org.base))
        .form(&[("token", RT)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = org
        .http
        .get(org.data_url("limits"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, body) = token_call(
        &org.base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", KEY),
            ("client_secret", SECRET),
            ("refresh_token", RT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let r = org
        .http
        .post(format!("{}/services/oauth2/revoke", org.base))
        .form(&[("token", "unknown")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let q = location.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.replace("%20", " ").replace("%26", "&"))
    })
}

#[tokio::test]
async fn authorize_page_flow_end_to_end() {
    let running = start(EmulatorConfig {
        users: 4,
        ..Default::default()
    })
    .await;
    let base = running.base_url().to_owned();
    let http = client();
    let callback = "http://localhost:9999/callback";
    let r = http
        .get(format!("{base}/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", KEY),
            ("redirect_uri", callback),
            ("state", "xyz&1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("<form") && page.contains("name=\"username\""),
        "{page}"
    );
    let username = page
        .split("name=\"username\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();

    let submit = |action: &'static str, username: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/services/oauth2/authorize"))
                .form(&[
                    ("client_id", KEY),
                    ("redirect_uri", callback),
                    ("state", "xyz&1"),
                    ("username", &username),
                    ("password", "pw"),
                    ("action", action),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = submit("allow", username.clone()).await;
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(callback), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("xyz&1"));
    let code = query_param(&location, "code").unwrap();

    // Wrong redirect_uri, then the real exchange: a code is single-use, so use a second one for that.
    let (status, body) = token_call(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", KEY),
            ("client_secret", SECRET),
            ("code", &code),
            ("redirect_uri", "http://elsewhere/"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("redirect_uri_mismatch"))
    );
    let r = submit("allow", username.clone()).await;
    let code = query_param(r.headers()["location"].to_str().unwrap(), "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", KEY),
        ("client_secret", SECRET),
        ("code", code.as_str()),
        ("redirect_uri", callback),
    ];
    let (status, body) = token_call(&base, &form).await;
    assert_eq!(status, 200, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(body["access_token"].is_string());
    let (status, body) = token_call(&base, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "codes are single-use"
    );
    // The new refresh token works.
    refresh(&http, &base, &rt).await;

    let r = submit("deny", username.clone()).await;
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap();
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some("access_denied")
    );
    let r = submit("allow", "nobody@nowhere.example".to_owned()).await;
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{base}/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "bad"),
            ("redirect_uri", callback),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn expired_and_missing_tokens_get_invalid_session_id() {
    let org = org_with(EmulatorConfig {
        users: 3,
        access_token_lifetime: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    assert_eq!(org.get("limits").send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = org.get("limits").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!([{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}])
    );
    let r = org
        .http
        .get(org.data_url("query?q=SELECT+Id+FROM+User"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = org
        .http
        .get(format!("{}/services/data/{V}/limits", org.base))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
