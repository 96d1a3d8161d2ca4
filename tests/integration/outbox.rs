//! The transactional outbox: one row per real change, none for failed or no-op writes,
//! and a claim query that never hands one row to two claimers.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, user_body};
use idm_sync::repo::outbox;

#[tokio::test]
async fn each_real_change_writes_one_reference_row_naming_the_changed_fields() {
    let app = TestApp::spawn().await;
    let created = app.create_user("ob").await;
    let id = created["_id"].as_str().unwrap().to_owned();
    let rev1: i64 = created["_rev"].as_str().unwrap().parse().unwrap();

    // A replace with the same content is not a change.
    let res = app
        .put(&format!("/managed/user/{id}"))
        .json(&user_body("ob"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut changed = user_body("ob");
    changed["sn"] = json!("Changed");
    let updated: Value = app
        .put(&format!("/managed/user/{id}"))
        .json(&changed)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rev2: i64 = updated["_rev"].as_str().unwrap().parse().unwrap();
    // A failed write (policy) is not a change either.
    let res = app
        .patch(&format!("/managed/user/{id}"))
        .json(&json!([{"operation": "replace", "field": "/mail", "value": "bad"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    app.delete(&format!("/managed/user/{id}"))
        .send()
        .await
        .unwrap();

    let rows: Vec<(String, i64, Vec<String>)> = sqlx::query_as(
        "SELECT operation, rev, changed_fields FROM outbox WHERE object_type = 'user' AND object_id = $1 ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("create", rev1));
    assert_eq!(rows[0].2, ["userName", "givenName", "sn", "mail"]);
    assert_eq!((rows[1].0.as_str(), rows[1].1), ("update", rev2));
    assert_eq!(rows[1].2, ["sn"], "an edit of sn names sn alone");
    assert_eq!(rows[2].0, "delete");
    assert!(rows[2].2.is_empty());
    assert!(rows[2].1 > rev2, "a deletion has its own, later revision");
}

#[tokio::test]
async fn two_claimers_never_take_the_same_row() {
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO outbox (object_type, object_id, rev, operation)
         SELECT 'user', 'u' || g, g, 'create' FROM generate_series(1, 500) g",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    // Two independent pools claim concurrently, in small batches, until nothing is left.
    let mut handles = Vec::new();
    for _ in 0..2 {
        let pool = db.another_pool().await;
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let mut tx = pool.begin().await.unwrap();
                let rows = outbox::claim(&mut tx, 7).await.unwrap();
                if rows.is_empty() {
                    tx.commit().await.unwrap();
                    break;
                }
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                // Hold the lock a moment, as a relay waiting for broker confirms would.
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                outbox::mark_published(&mut tx, &ids).await.unwrap();
                tx.commit().await.unwrap();
                mine.extend(ids);
            }
            mine
        }));
    }
    let a = handles.remove(0).await.unwrap();
    let b = handles.remove(0).await.unwrap();
    let sa: HashSet<i64> = a.iter().copied().collect();
    let sb: HashSet<i64> = b.iter().copied().collect();
    assert!(sa.is_disjoint(&sb), "a row was claimed twice");
    assert_eq!(sa.len() + sb.len(), 500);
    assert_eq!(a.len() + b.len(), 500);
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both claimers worked: {} / {}",
        a.len(),
        b.len()
    );
    assert_eq!(outbox::backlog(&db.pool).await.unwrap(), 0);
}

#[tokio::test]
async fn a_claim_rolled_back_is_claimed_again() {
    let db = TestDb::new().await;
    sqlx::query("INSERT INTO outbox (object_type, object_id, rev, operation) VALUES ('user', 'x', 1, 'delete')")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    assert_eq!(outbox::claim(&mut tx, 10).await.unwrap().len(), 1);
    // While held, another claimer sees nothing.
    let mut other = db.pool.begin().await.unwrap();
    assert!(outbox::claim(&mut other, 10).await.unwrap().is_empty());
    other.rollback().await.unwrap();
    // The claimer dies (its transaction rolls back): the row is free again.
    tx.rollback().await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let rows = outbox::claim(&mut tx, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].object_id, "x");
}
