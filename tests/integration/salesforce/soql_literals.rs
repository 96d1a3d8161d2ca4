//! Managed values that are hostile to SOQL (quotes, backslashes, control characters, a length
//! Salesforce refuses in a WHERE clause) in one correlation batch: the batch's query still
//! runs, and every user it can match correlates.

use std::sync::Arc;

use chrono::Utc;
use idm_sync::mapping::SyncConfig;
use idm_sync::outbound::sync::{Outcome, SyncEngine, UserChange};
use idm_sync::outbound::worker::OUTBOUND_MAPPING;
use serde_json::Value;

use super::support::{QUERY, new_user};
use crate::helpers::{create_managed, sf_user_body};

/// The Salesforce id linked to a managed user, if any.
async fn linked(pool: &sqlx::PgPool, id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT first_id FROM links WHERE second_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hostile_value_in_a_correlation_batch_breaks_nothing() {
    let env = crate::recon::support::env(0).await;
    let org = env._org.handle();
    let profile = org.profile_id("Standard User").unwrap();
    let hostile = "o'ne\"two\\three\nfour\u{1}five\u{7f}@idm-sync.test";
    let plain = [
        "ann@idm-sync.test",
        "bob's@idm-sync.test",
        "back\\slash@idm-sync.test",
    ];
    // Every one of them already exists in Salesforce: correlation must find it (FOUND).
    let mut sf_ids = Vec::new();
    for name in plain.iter().chain([&hostile]) {
        sf_ids.push(env.sf.create(&new_user(&org, name)).await.unwrap());
    }
    let mut ids = Vec::new();
    for (n, name) in plain.iter().chain([&hostile]).enumerate() {
        let mut body = sf_user_body(name, &profile);
        // The quotes would not make a valid mail address: only userName is hostile.
        body["mail"] = Value::String(format!("user{n}@example.com"));
        ids.push(create_managed(&env.app, &body).await);
    }
    // Longer than any string SOQL accepts in a WHERE clause (REST's policy stops such a userName;
    // a value stored before that policy, or by another writer, can still be there).
    let long_id = "long-user-name";
    let mut body = sf_user_body("long@idm-sync.test", &profile);
    body["userName"] = Value::String(format!("{}@idm-sync.test", "x".repeat(4_100)));
    let mut tx = env.app.db.pool.begin().await.unwrap();
    idm_sync::repo::managed::insert(&mut tx, "user", long_id, body.as_object().unwrap())
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    ids.push(long_id.to_owned());

    let sync = SyncConfig::load(&env.conf.0).unwrap();
    let engine = SyncEngine::new(
        env.app.db.pool.clone(),
        Arc::new(sync),
        OUTBOUND_MAPPING,
        env.sf.clone(),
    )
    .unwrap();
    let mut changes = Vec::new();
    for id in &ids {
        let rev: i64 = sqlx::query_scalar("SELECT rev FROM managed_objects WHERE id = $1")
            .bind(id)
            .fetch_one(&env.app.db.pool)
            .await
            .unwrap();
        changes.push(UserChange {
            object_id: id.clone(),
            rev,
            force: false,
            repair: Vec::new(),
            committed_at: Utc::now(),
            attempts: 0,
            last_attempt: false,
        });
    }
    org.reset_stats();
    let outcomes = engine.apply(&changes).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Outcome::Done), "{outcomes:?}");
    assert_eq!(
        org.stats().calls_of(QUERY),
        1,
        "one correlation query for the batch"
    );
    for (id, sf_id) in ids.iter().zip(&sf_ids) {
        assert_eq!(
            linked(&env.app.db.pool, id).await.as_deref(),
            Some(sf_id.as_str()),
            "{id} correlated with its Salesforce user"
        );
    }
    // The overlong value matched nothing, so its user was created, which Salesforce refused
    // (Username is 80 characters at most): a failure of that user alone.
    assert_eq!(linked(&env.app.db.pool, long_id).await, None);
    let failed: Vec<String> = sqlx::query_scalar("SELECT object_id FROM sync_failures")
        .fetch_all(&env.app.db.pool)
        .await
        .unwrap();
    assert_eq!(failed, [long_id]);
}
