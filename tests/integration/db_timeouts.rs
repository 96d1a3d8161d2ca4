//! Issue 13, item 7: every role's connections carry a `statement_timeout` and an
//! `idle_in_transaction_session_timeout`; a statement past its limit is a typed error, and an
//! API request whose statement runs past it answers 503 in IDM's shape instead of hanging.

use std::time::{Duration, Instant};

use idm_sync::repo::RepoError;
use idm_sync::repo::db::{self, DbSettings};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, TestDb, db_settings};

async fn show(pool: &PgPool, setting: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A pool on `db` with these limits.
async fn pool_with(db: &TestDb, statement: Option<Duration>, idle: Option<Duration>) -> PgPool {
    db::connect(&DbSettings {
        statement_timeout: statement,
        idle_in_transaction_timeout: idle,
        ..db_settings(&db.url)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn pooled_connections_carry_the_role_time_limits() {
    let db = TestDb::new().await;
    // The defaults (serve's).
    let defaults = db::connect(&db_settings(&db.url)).await.unwrap();
    assert_eq!(show(&defaults, "statement_timeout").await, "30s");
    assert_eq!(
        show(&defaults, "idle_in_transaction_session_timeout").await,
        "1min"
    );
    let pool = pool_with(
        &db,
        Some(Duration::from_millis(750)),
        Some(Duration::from_secs(2)),
    )
    .await;
    assert_eq!(show(&pool, "statement_timeout").await, "750ms");
    assert_eq!(
        show(&pool, "idle_in_transaction_session_timeout").await,
        "2s"
    );
    // Migrations run without the limits, on a connection that never returns to the pool.
    db::migrate(&pool).await.unwrap();
    assert_eq!(show(&pool, "statement_timeout").await, "750ms");
    // None: no limit.
    let unlimited = pool_with(&db, None, None).await;
    assert_eq!(show(&unlimited, "statement_timeout").await, "0");
    assert_eq!(
        show(&unlimited, "idle_in_transaction_session_timeout").await,
        "0"
    );
}

#[tokio::test]
async fn a_statement_past_the_limit_is_a_timeout_error_not_a_hang() {
    let db = TestDb::new().await;
    let pool = pool_with(&db, Some(Duration::from_millis(500)), None).await;
    // Another session holds the outbox: the repository's count waits on it.
    let mut blocker = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let started = Instant::now();
    let err = idm_sync::repo::outbox::backlog(&pool).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err,
            RepoError::Timeout {
                limit: "statement_timeout",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("statement_timeout"), "{err}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    blocker.rollback().await.unwrap();
    // The pool is fine afterwards.
    assert_eq!(idm_sync::repo::outbox::backlog(&pool).await.unwrap(), 0);
}

#[tokio::test]
async fn a_session_idle_in_a_transaction_is_ended_and_its_locks_released() {
    let db = TestDb::new().await;
    let pool = pool_with(&db, None, Some(Duration::from_millis(500))).await;
    sqlx::query("INSERT INTO outbox (object_type, object_id, rev, operation) VALUES ('user', 'u1', 1, 'create')")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut idle = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM outbox FOR UPDATE")
        .fetch_all(&mut *idle)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Someone else can lock the row: the idle session was ended, its lock with it.
    let mut other = db.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM outbox FOR UPDATE NOWAIT")
        .fetch_all(&mut *other)
        .await
        .unwrap();
    other.rollback().await.unwrap();
    // The idle transaction's next statement fails: it no longer exists.
    let err = RepoError::from(
        sqlx::query("SELECT 1")
            .execute(&mut *idle)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(
            err,
            RepoError::Timeout {
                limit: "idle_in_transaction_session_timeout",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_api_request_whose_statement_runs_past_the_limit_answers_503() {
    let app =
        TestApp::spawn_with_db(|db| db.statement_timeout = Some(Duration::from_secs(1))).await;
    let user = app.create_user("slowpoke").await;
    let id = user["_id"].as_str().unwrap();
    // A long transaction elsewhere holds the user's row: the PATCH's write waits on it.
    let mut blocker = app.db.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM managed_objects WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_all(&mut *blocker)
        .await
        .unwrap();
    let started = Instant::now();
    let res = app
        .patch(&format!("/managed/user/{id}"))
        .json(&json!([{"operation": "replace", "field": "/sn", "value": "Changed"}]))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], 503);
    assert_eq!(body["reason"], "Service Unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("statement_timeout"), "{message}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    blocker.rollback().await.unwrap();

    // Nothing changed, and the server keeps serving.
    let res = app
        .get(&format!("/managed/user/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let now: Value = res.json().await.unwrap();
    assert_eq!(now["_rev"], user["_rev"]);
    assert_eq!(now["sn"], user["sn"]);
}
