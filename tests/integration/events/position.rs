//! The replay id of a batch commits in the transaction of the writes the batch caused: shown
//! by Postgres itself, the rows' `xmin` (the id of the transaction that wrote them) being one.

use idm_sync::recon::by_ids::IdsOutcome;
use idm_sync::repo::event_subscriptions::{self, Position};
use serde_json::json;

use super::env;

const MAPPING: &str = "systemSalesforceUser_managedUser";

fn position(holder: &str, replay_id: &[u8]) -> Position {
    Position {
        connector: "salesforce".into(),
        holder: holder.into(),
        replay_id: replay_id.to_vec(),
        last_commit_at: None,
    }
}

#[tokio::test]
async fn a_batch_s_replay_id_commits_with_the_writes_it_caused() {
    let env = env(3).await;
    let pool = &env.app.db.pool;
    let claimed =
        event_subscriptions::claim(pool, "salesforce", "/data/UserChangeEvent", "a", 60.0)
            .await
            .unwrap();
    assert!(claimed.is_some());
    let engine = env.engine();
    let id = env.admin_create("position.ada@idm-sync.test");
    let managed_xmin = "SELECT xmin::text FROM managed_objects WHERE body->>'userName' = 'position.ada@idm-sync.test'";
    let position_xmin = "SELECT xmin::text FROM event_subscriptions WHERE connector = 'salesforce'";
    let replay_id = "SELECT encode(replay_id, 'hex') FROM event_subscriptions";

    let ids = vec![id.clone()];
    let apply = async |holder: &str, replay_id: u8| {
        let outcome = engine
            .reconcile_ids(MAPPING, None, &ids, Some(&position(holder, &[replay_id])))
            .await
            .unwrap();
        assert!(matches!(outcome, IdsOutcome::Done(_)), "{outcome:?}");
    };

    // A create: the managed user and the position, one transaction.
    apply("a", 1).await;
    let created = env.text(managed_xmin).await;
    assert!(created.is_some());
    assert_eq!(env.text(position_xmin).await, created);
    assert_eq!(env.text(replay_id).await.as_deref(), Some("01"));

    // An edit: the same again.
    env.admin_update(&id, json!({"LastName": "Byron"}));
    apply("a", 2).await;
    let updated = env.text(managed_xmin).await;
    assert_ne!(updated, created);
    assert_eq!(env.text(position_xmin).await, updated);
    assert_eq!(env.text(replay_id).await.as_deref(), Some("02"));

    // Nothing changed: the position is stored on its own, the user untouched.
    apply("a", 3).await;
    assert_eq!(env.text(managed_xmin).await, updated);
    assert_ne!(env.text(position_xmin).await, updated);
    assert_eq!(env.text(replay_id).await.as_deref(), Some("03"));

    // A subscriber that lost the lease: its writes are harmless and commit, its position does not.
    env.admin_update(&id, json!({"LastName": "King"}));
    apply("b", 4).await;
    assert_ne!(env.text(managed_xmin).await, updated);
    assert_eq!(env.text(replay_id).await.as_deref(), Some("03"));
}

#[tokio::test]
async fn a_batch_of_several_runs_stores_its_position_with_the_last_one() {
    let env = env(3).await;
    let pool = &env.app.db.pool;
    event_subscriptions::claim(pool, "salesforce", "/data/UserChangeEvent", "a", 60.0)
        .await
        .unwrap();
    let first = env.admin_create("position.first@idm-sync.test");
    let last = env.admin_create("position.last@idm-sync.test");
    // More ids than one run takes: the made-up ones are simply not found.
    let per_run = idm_sync::recon::by_ids::MAX_IDS_PER_RUN;
    let mut ids: Vec<String> = (0..per_run - 1).map(|i| format!("005{i:012}")).collect();
    ids.insert(0, first);
    ids.push(last);
    let outcome = env
        .engine()
        .reconcile_ids(MAPPING, None, &ids, Some(&position("a", &[9])))
        .await
        .unwrap();
    let IdsOutcome::Done(done) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(done.runs.len(), 2);
    let xmin_of = |name: &str| {
        format!("SELECT xmin::text FROM managed_objects WHERE body->>'userName' = '{name}'")
    };
    let position_xmin = env.text("SELECT xmin::text FROM event_subscriptions").await;
    assert_eq!(
        env.text(&xmin_of("position.last@idm-sync.test")).await,
        position_xmin
    );
    assert_ne!(
        env.text(&xmin_of("position.first@idm-sync.test")).await,
        position_xmin
    );
}

#[tokio::test]
async fn a_held_back_delete_carries_the_position_in_its_transaction() {
    let env = env(3).await;
    let pool = &env.app.db.pool;
    event_subscriptions::claim(pool, "salesforce", "/data/UserChangeEvent", "a", 60.0)
        .await
        .unwrap();
    let engine = env.engine();
    let id = env.admin_create("position.gone@idm-sync.test");
    let ids = vec![id.clone()];
    engine
        .reconcile_ids(MAPPING, None, &ids, Some(&position("a", &[1])))
        .await
        .unwrap();
    // No longer a valid source (the shipped validSource): UNQUALIFIED, whose DELETE is held
    // back until the guard has counted it, then applied in a transaction of its own.
    env.admin_update(&id, json!({"Email": "autoproc.gone@example.org"}));
    let outcome = engine
        .reconcile_ids(MAPPING, None, &ids, Some(&position("a", &[2])))
        .await
        .unwrap();
    let IdsOutcome::Done(done) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        env.scalar("SELECT count(*) FROM managed_objects WHERE body->>'userName' = 'position.gone@idm-sync.test'")
            .await,
        0
    );
    let delete_xmin = env
        .text(&format!(
            "SELECT xmin::text FROM recon_audit WHERE recon_id = '{}' AND body->>'action' = 'DELETE'",
            done.runs[0]
        ))
        .await;
    assert!(delete_xmin.is_some());
    assert_eq!(
        env.text("SELECT xmin::text FROM event_subscriptions").await,
        delete_xmin
    );
    assert_eq!(
        env.text("SELECT encode(replay_id, 'hex') FROM event_subscriptions")
            .await
            .as_deref(),
        Some("02")
    );
}
