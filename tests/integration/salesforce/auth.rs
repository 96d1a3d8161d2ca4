//! OAuth: the shared session, refresh on expiry, rotation persisted, permanent token errors.

use std::sync::Arc;

use idm_sync::salesforce::{
    ConnectorState, ErrorKind, SalesforceClient, SalesforceError, Secret, TokenStore,
};
use sf_emulator::EmulatorConfig;

use super::support::*;
use crate::helpers::TestDb;

#[tokio::test]
async fn one_token_call_serves_many_api_calls() {
    let org = start_org(10, false).await;
    let client = client(org.base_url());
    assert_eq!(client.state(), ConnectorState::Unknown);
    for _ in 0..3 {
        client.limits().await.unwrap();
    }
    let stats = org.handle().stats();
    assert_eq!(stats.token_calls, 1);
    assert_eq!(stats.calls_of(LIMITS), 3);
    assert_eq!(client.state(), ConnectorState::Ready);
    let usage = client.last_api_usage().unwrap();
    assert_eq!(usage.used, stats.api_usage);
    assert_eq!(usage.max, stats.daily_limit);
}

#[tokio::test]
async fn rotated_refresh_token_is_stored_and_preferred_after_a_restart() {
    let db = TestDb::new().await;
    let org = start_org(10, true).await;
    let conf_token = EmulatorConfig::default().refresh_token;

    let first = SalesforceClient::new(
        config(org.base_url()),
        crate::helpers::token_store(&db.pool),
    )
    .unwrap();
    first.limits().await.unwrap();
    let (stored, instance, conf_hash): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT refresh_token, instance_url, conf_refresh_token_sha256 FROM salesforce_tokens WHERE system_name = 'salesforce'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_ne!(stored, conf_token, "the rotated token is stored");
    assert!(instance.unwrap().starts_with(org.base_url()));
    assert_eq!(conf_hash.unwrap(), Secret::new(&conf_token).sha256_hex());

    // A restarted client on the same database uses the stored access token: no token call.
    let second = SalesforceClient::new(
        config(org.base_url()),
        crate::helpers::token_store(&db.pool),
    )
    .unwrap();
    second.limits().await.unwrap();
    assert_eq!(org.handle().stats().token_calls, 1);
    // Once that expires, it refreshes with the stored (rotated) refresh token.
    org.handle().expire_access_tokens();
    second.limits().await.unwrap();
    assert_eq!(org.handle().stats().token_calls, 2);
    let again: String = sqlx::query_scalar("SELECT refresh_token FROM salesforce_tokens")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_ne!(again, stored, "the second refresh rotated and stored again");

    // The configured token died with the rotation: a client that ignores the store fails
    // (and, as Salesforce does on a replayed token, the emulator revokes the whole family).
    let forgetful = client(org.base_url());
    let err = forgetful.limits().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NeedsReauthorization, "{err}");
}

#[tokio::test]
async fn a_changed_configured_token_wins_over_an_older_stored_one() {
    let db = TestDb::new().await;
    let org = start_org(10, false).await;
    let store = crate::helpers::token_store(&db.pool);
    // Stored while the configuration held another token; the operator has since pasted a new one.
    store
        .save(
            "salesforce",
            &Secret::new("stale-stored-token"),
            None,
            Some(&Secret::new("old-conf").sha256_hex()),
        )
        .await
        .unwrap();
    let client = SalesforceClient::new(config(org.base_url()), store.clone()).unwrap();
    client.limits().await.unwrap();

    // With the configuration unchanged since the row was written, the stored token is used.
    let conf_hash = Secret::new(EmulatorConfig::default().refresh_token).sha256_hex();
    store
        .save(
            "salesforce",
            &Secret::new("stale-stored-token"),
            None,
            Some(&conf_hash),
        )
        .await
        .unwrap();
    let client = SalesforceClient::new(config(org.base_url()), store).unwrap();
    let err = client.limits().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NeedsReauthorization);
}

#[tokio::test]
async fn invalid_grant_is_typed_marks_the_connector_and_is_not_retried() {
    let org = start_org(10, false).await;
    let mut cfg = config(org.base_url());
    cfg.refresh_token = Some(Secret::new("revoked-refresh-token"));
    let client = SalesforceClient::new(cfg, TokenStore::in_memory()).unwrap();
    for _ in 0..5 {
        let err = client.limits().await.unwrap_err();
        assert!(
            matches!(&err, SalesforceError::NeedsReauthorization { error, .. } if error == "invalid_grant"),
            "{err}"
        );
        assert!(!err.to_string().contains("revoked-refresh-token"));
    }
    assert!(matches!(
        client.state(),
        ConnectorState::NeedsReauthorization { .. }
    ));
    let stats = org.handle().stats();
    assert_eq!(
        stats.token_calls, 1,
        "one token call, then the failure is replayed"
    );
    assert_eq!(stats.data_calls(), 0);
}

#[tokio::test]
async fn invalid_client_is_bad_credentials() {
    let org = start_org(10, false).await;
    let mut cfg = config(org.base_url());
    cfg.client_secret = Secret::new("wrong-secret");
    let client = SalesforceClient::new(cfg, TokenStore::in_memory()).unwrap();
    let err = client.test().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadCredentials, "{err}");
    assert!(!err.to_string().contains("wrong-secret"));
    assert!(matches!(
        client.state(),
        ConnectorState::BadCredentials { .. }
    ));
    client.limits().await.unwrap_err();
    assert_eq!(org.handle().stats().token_calls, 1);
}

#[tokio::test]
async fn test_action_recovers_once_a_new_token_is_stored() {
    let org = start_org(10, false).await;
    let store = TokenStore::in_memory();
    let mut cfg = config(org.base_url());
    cfg.refresh_token = Some(Secret::new("dead-token"));
    let client = SalesforceClient::new(cfg, store.clone()).unwrap();
    assert_eq!(
        client.test().await.unwrap_err().kind(),
        ErrorKind::NeedsReauthorization
    );
    // The authorize flow (maybe in another process) stores a working token.
    store
        .save(
            "salesforce",
            &Secret::new(EmulatorConfig::default().refresh_token),
            None,
            None,
        )
        .await
        .unwrap();
    let report = client.test().await.unwrap();
    assert!(report.instance_url.starts_with(org.base_url()));
    assert!(report.limits.daily_api_requests.is_some());
    assert_eq!(client.state(), ConnectorState::Ready);
}

#[tokio::test]
async fn concurrent_callers_with_an_expired_token_share_one_refresh() {
    let org = start_org(10, false).await;
    let client = client(org.base_url());
    client.limits().await.unwrap();
    org.handle().expire_access_tokens();
    org.handle().reset_stats();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (client, barrier) = (client.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                client.limits().await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = org.handle().stats();
    assert_eq!(stats.token_calls, 1);
    // Each caller: one 401 at most, then one success.
    assert!(
        stats.calls_of(LIMITS) >= 21 && stats.calls_of(LIMITS) <= 40,
        "{stats:?}"
    );
}

#[tokio::test]
async fn authorization_code_is_exchanged_stored_and_used() {
    let db = TestDb::new().await;
    let org = start_org(10, false).await;
    let base = org.base_url().to_owned();
    // An active user's username, to log in on the emulator's authorize page.
    let pages = all_pages(
        &client(&base),
        "SELECT Username FROM User WHERE IsActive = true LIMIT 1",
        200,
    )
    .await
    .unwrap();
    let username = pages[0].records[0]["Username"].as_str().unwrap().to_owned();

    let mut cfg = config(&base);
    cfg.refresh_token = None;
    let redirect = "http://127.0.0.1:9/callback";
    let http = crate::helpers::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Log in and allow on the emulator's page for the authorize URL of `verifier`: the code.
    let code_for = async |verifier: &idm_sync::salesforce::Secret| {
        let url = idm_sync::salesforce::authorize_url(&cfg, redirect, "st4te", verifier).unwrap();
        assert!(
            url.as_str()
                .starts_with(&format!("{base}/services/oauth2/authorize?"))
        );
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"].len(), 43, "base64url of a SHA-256");
        let answer = http
            .post(format!("{base}/services/oauth2/authorize"))
            .form(&[
                ("client_id", cfg.client_id.as_str()),
                ("redirect_uri", redirect),
                ("state", "st4te"),
                ("username", &username),
                ("action", "allow"),
                ("code_challenge", &q["code_challenge"]),
                ("code_challenge_method", &q["code_challenge_method"]),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 302);
        let location = reqwest::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
        location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    };

    let client = SalesforceClient::new(cfg.clone(), crate::helpers::token_store(&db.pool)).unwrap();
    assert_eq!(
        client.limits().await.unwrap_err().kind(),
        ErrorKind::NotAuthorized
    );
    // PKCE: a code whose authorization carried a challenge is worth nothing without its
    // verifier (an intercepted code), and is used up by the attempt.
    let verifier = idm_sync::salesforce::pkce_verifier();
    let code = code_for(&verifier).await;
    let other = idm_sync::salesforce::pkce_verifier();
    let refused = client
        .authorize_with_code(&code, redirect, &other)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NeedsReauthorization, "{refused}");
    assert!(
        refused.to_string().contains("invalid code verifier"),
        "{refused}"
    );
    assert!(
        client
            .authorize_with_code(&code, redirect, &verifier)
            .await
            .is_err()
    );

    let verifier = idm_sync::salesforce::pkce_verifier();
    let code = code_for(&verifier).await;
    let grant = client
        .authorize_with_code(&code, redirect, &verifier)
        .await
        .unwrap();
    assert!(grant.refresh_token.is_some());
    client.limits().await.unwrap();
    // A restarted client finds the stored token.
    let restarted = SalesforceClient::new(cfg, crate::helpers::token_store(&db.pool)).unwrap();
    restarted.limits().await.unwrap();
}

#[tokio::test]
async fn debug_output_hides_secrets() {
    let org = start_org(10, false).await;
    let client = client(org.base_url());
    client.limits().await.unwrap();
    let shown = format!("{client:?}");
    let defaults = EmulatorConfig::default();
    assert!(!shown.contains(&defaults.consumer_secret), "{shown}");
    assert!(!shown.contains(&defaults.refresh_token), "{shown}");
    assert!(shown.contains("<redacted>"));
}
