//! Refresh single-flight across processes (issue 13): every process sharing the database
//! refreshes under one Postgres lock, re-reads the stored tokens first, and uses an access token
//! another process stored instead of refreshing again. With refresh-token rotation on, a second
//! refresh would present a rotated-out token: `invalid_grant`, and the family revoked.
//!
//! The focused tests stand two "processes" up as two clients, each with its own pool and
//! token store on one database; the last one runs serve, three workers and a scheduler as
//! separate processes of the built binary.

use std::sync::Arc;
use std::time::Duration;

use idm_sync::emulator::{Emulator, EmulatorConfig, RunningEmulator};
use idm_sync::salesforce::{SalesforceClient, Secret};

use super::support::*;
use crate::helpers::TestDb;

async fn org(rotate: bool, max_uses: Option<u64>) -> RunningEmulator {
    Emulator::build(
        EmulatorConfig {
            users: 5,
            rotate_refresh_tokens: rotate,
            access_token_max_uses: max_uses,
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
    .start()
}

/// A client as a separate process would have it: its own pool on the shared database.
async fn process_client(db: &TestDb, base: &str) -> SalesforceClient {
    let pool = db.another_pool().await;
    SalesforceClient::new(config(base), crate::helpers::token_store(&pool)).unwrap()
}

async fn stored_generation(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT generation FROM salesforce_sessions WHERE system_name = 'salesforce'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn two_processes_with_rotation_share_each_refresh() {
    let db = TestDb::new().await;
    let org = org(true, None).await;
    let first = process_client(&db, org.base_url()).await;
    let second = process_client(&db, org.base_url()).await;

    first.limits().await.unwrap();
    // The second starts with the access token the first stored: no token call of its own.
    second.limits().await.unwrap();
    let stats = org.handle().stats();
    assert_eq!((stats.token_calls, stats.invalid_grants), (1, 0));
    assert_eq!(stored_generation(&db).await, 1);

    // Both find their token expired at once, many times: one refresh each time, never a
    // rotated-out refresh token presented.
    for round in 1..=5 {
        org.handle().expire_access_tokens();
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let calls: Vec<_> = (0..8)
            .map(|n| {
                let client = if n % 2 == 0 {
                    first.clone()
                } else {
                    second.clone()
                };
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    client.limits().await
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let stats = org.handle().stats();
        assert_eq!(stats.invalid_grants, 0, "round {round}");
        assert_eq!(stats.token_calls, 1 + round, "one refresh in round {round}");
        assert_eq!(stored_generation(&db).await, 1 + round as i64);
    }
    // The refresh token in the store is the live one: a third process starts with it.
    org.handle().expire_access_tokens();
    let third = process_client(&db, org.base_url()).await;
    third.limits().await.unwrap();
    assert_eq!(org.handle().stats().invalid_grants, 0);
}

#[tokio::test]
async fn a_refresh_waits_for_the_lock_and_then_uses_what_the_holder_stored() {
    let db = TestDb::new().await;
    let org = org(true, None).await;
    let client = process_client(&db, org.base_url()).await;
    client.limits().await.unwrap();
    org.handle().expire_access_tokens();

    // Another process holds the lock, as during its own token call.
    let other = crate::helpers::token_store(&db.another_pool().await);
    let mut held = other
        .lock_refresh("salesforce", Duration::from_secs(30))
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.limits().await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the refresh waits for the lock");
    assert_eq!(org.handle().stats().token_calls, 1);

    // The holder refreshes with the stored refresh token, as a process would, and stores
    // what it got before releasing the lock.
    let stored = held.token().await.unwrap().unwrap();
    let defaults = EmulatorConfig::default();
    let grant: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", org.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", defaults.consumer_key.as_str()),
            ("client_secret", defaults.consumer_secret.as_str()),
            ("refresh_token", stored.refresh_token.expose()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotated = Secret::new(grant["refresh_token"].as_str().unwrap());
    held.save_token(&rotated, None, stored.conf_refresh_token_sha256.as_deref())
        .await
        .unwrap();
    held.save_session(
        &Secret::new(grant["access_token"].as_str().unwrap()),
        grant["instance_url"].as_str().unwrap(),
        &rotated.sha256_hex(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    held.release().await.unwrap();

    waiting.await.unwrap().unwrap();
    let stats = org.handle().stats();
    assert_eq!(
        stats.token_calls, 2,
        "the waiter made no token call of its own"
    );
    assert_eq!(stats.invalid_grants, 0);
}

#[tokio::test]
async fn a_stored_session_is_used_only_with_the_refresh_token_it_came_from() {
    let db = TestDb::new().await;
    let org = org(false, None).await;
    let store = crate::helpers::token_store(&db.pool);
    let conf_token = Secret::new(EmulatorConfig::default().refresh_token);
    let save = async |access: &str, refresh: &Secret| {
        let mut lock = store
            .lock_refresh("salesforce", Duration::from_secs(5))
            .await
            .unwrap();
        lock.save_session(
            &Secret::new(access),
            org.base_url(),
            &refresh.sha256_hex(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        lock.release().await.unwrap();
    };

    // Stored under another authorization: not used, this client refreshes.
    save(
        "not-a-token-of-this-org",
        &Secret::new("another-refresh-token"),
    )
    .await;
    let client = process_client(&db, org.base_url()).await;
    client.limits().await.unwrap();
    let stats = org.handle().stats();
    assert_eq!(stats.token_calls, 1);
    assert_eq!(stats.calls_of(LIMITS), 1, "no call with the other token");

    // Stored under this refresh token but dead (revoked, expired): used, refused once,
    // then refreshed, and the call goes through.
    save("dead-token-of-this-authorization", &conf_token).await;
    let client = process_client(&db, org.base_url()).await;
    org.handle().reset_stats();
    client.limits().await.unwrap();
    let stats = org.handle().stats();
    assert_eq!(stats.token_calls, 1);
    assert_eq!(stats.calls_of(LIMITS), 2, "a 401, then the retry");
}

#[tokio::test]
async fn tokens_that_expire_every_few_calls_under_load_never_get_invalid_grant() {
    let db = TestDb::new().await;
    // Each token serves 20 calls, shared by three processes of four busy tasks each.
    let org = org(true, Some(20)).await;
    let clients = [
        process_client(&db, org.base_url()).await,
        process_client(&db, org.base_url()).await,
        process_client(&db, org.base_url()).await,
    ];
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let client = clients[n % clients.len()].clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    client.limits().await?;
                }
                Ok::<_, idm_sync::salesforce::SalesforceError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = org.handle().stats();
    assert_eq!(stats.invalid_grants, 0);
    assert!(
        stats.token_calls >= 120 / 20,
        "tokens expired every few calls: {} token calls",
        stats.token_calls
    );
}
