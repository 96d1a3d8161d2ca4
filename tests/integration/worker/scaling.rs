//! Several workers: the partitions split among them through `outbound_workers`, and the hard
//! failures — a worker stopped, aborted, SIGKILLed as a separate process mid-batch, the
//! broker restarted mid-stream — never lose a change.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use sf_emulator::FaultUpdate;

use super::broker_node::BrokerNode;
use super::{Env, TEST_LEASE, assert_converged, env_with, wait_until};
use crate::helpers::{RoleProcess, amqp_url};

/// Users whose ids fall into every partition of `env` (ids are random: create until covered).
async fn users_in_every_partition(env: &Env, prefix: &str, at_least: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut covered = BTreeSet::new();
    while ids.len() < at_least || covered.len() < usize::from(env.topology.partitions) {
        let id = env
            .create(&format!("{prefix}{}@idm-sync.test", ids.len()))
            .await;
        covered.insert(env.topology.partition_for(&id));
        ids.push(id);
    }
    ids
}

async fn patch_all(env: &Env, ids: &[String], tag: &str) {
    for (n, id) in ids.iter().enumerate() {
        env.patch(id, "/sn", json!(format!("{tag}{n}"))).await;
    }
}

async fn no_failures_no_duplicates(env: &Env, users: usize) {
    assert_eq!(env.scalar("SELECT count(*) FROM sync_failures").await, 0);
    assert_eq!(env.handle().user_count(), users, "no duplicate creates");
}

#[tokio::test]
async fn workers_share_partitions_and_a_dying_one_hands_over() {
    let env = env_with(0, 12, amqp_url()).await;
    let first = env.spawn_worker();
    let second = env.spawn_worker();
    let third = env.spawn_worker();
    let members = env.wait_split(&[&first.id, &second.id, &third.id]).await;
    for m in &members {
        assert_eq!(m.partitions.len(), 4, "a third each: {members:?}");
    }
    let ids = users_in_every_partition(&env, "shared", 60).await;
    assert_converged(&env, &ids).await;
    // Each worker did a share of the work, and only on its own partitions.
    for w in [&first, &second, &third] {
        let own = &members
            .iter()
            .find(|m| m.worker_id == w.id)
            .unwrap()
            .partitions;
        let done = w.stats.per_partition();
        assert!(done.iter().sum::<u64>() > 0, "worker {} idle", w.id);
        for (p, n) in done.iter().enumerate() {
            assert!(
                *n == 0 || own.contains(&(p as i32)),
                "worker {} processed partition {p}, not its own {own:?}",
                w.id
            );
        }
    }

    // A graceful stop deregisters at once: no waiting for the lease.
    let first_id = first.id.clone();
    first.stop().await;
    assert_eq!(
        env.scalar(&format!(
            "SELECT count(*) FROM outbound_workers WHERE worker_id = '{first_id}'"
        ))
        .await,
        0
    );
    env.wait_split(&[&second.id, &third.id]).await;
    patch_all(&env, &ids, "Stopped").await;
    assert_converged(&env, &ids).await;

    // The second dies without a goodbye: the third takes everything once its lease ends.
    let before = third.stats.per_partition().iter().sum::<u64>();
    second.task.abort();
    drop(second);
    patch_all(&env, &ids, "Handed").await;
    let members = env.wait_split(&[&third.id]).await;
    assert_eq!(members[0].partitions.len(), 12);
    assert_converged(&env, &ids).await;
    let after = third.stats.per_partition().iter().sum::<u64>();
    assert!(
        after - before >= ids.len() as u64,
        "the survivor applied every edit: {before} → {after}"
    );
    no_failures_no_duplicates(&env, ids.len()).await;
    third.stop().await;
    assert!(env.members().await.is_empty(), "every worker deregistered");
}

/// `idm-sync worker` as a child process of this test.
fn spawn_worker_process(env: &Env) -> RoleProcess {
    let mut command = RoleProcess::command("worker", &env.conf.0, &env.app.db.url);
    command
        .env("AMQP_URL", &env.amqp_url)
        .env("IDM_BROKER_PREFIX", &env.topology.prefix)
        .env("IDM_PARTITIONS", env.topology.partitions.to_string())
        .env("IDM_WORKER_LEASE_SECS", TEST_LEASE.as_secs().to_string());
    RoleProcess::spawn(command)
}

/// Managed users not yet in step with Salesforce (unlinked, or the link behind).
async fn behind(env: &Env) -> i64 {
    env.scalar(
        "SELECT count(*) FROM managed_objects m LEFT JOIN links l ON l.second_id = m.id
         WHERE m.object_type = 'user' AND (l.synced_rev IS NULL OR l.synced_rev < m.rev)",
    )
    .await
}

#[tokio::test]
async fn a_sigkilled_worker_process_loses_nothing() {
    let env = env_with(0, 8, amqp_url()).await;
    // Slow Salesforce calls: the kill lands while calls and batches are in flight.
    env.handle().update_faults(&FaultUpdate {
        latency_ms: Some(150),
        ..FaultUpdate::default()
    });
    let mut process = spawn_worker_process(&env);
    wait_until("the worker process owns every partition", async || {
        env.members()
            .await
            .first()
            .is_some_and(|m| m.partitions.len() == 8)
    })
    .await;
    let process_id = env.members().await[0].worker_id.clone();
    let ids = users_in_every_partition(&env, "killed", 80).await;
    wait_until("some progress", async || {
        env.scalar("SELECT count(*) FROM links").await >= 10
    })
    .await;
    // A stream of edits, with the kill in the middle of it.
    patch_all(&env, &ids[..40], "Before").await;
    let pending = behind(&env).await;
    process.kill();
    assert!(pending > 0, "changes were in flight when the worker died");
    patch_all(&env, &ids[40..], "After").await;

    let survivor = env.spawn_worker();
    // The dead worker's lease runs out; then the survivor holds every partition.
    let members = env.wait_split(&[&survivor.id]).await;
    assert_eq!(members[0].partitions.len(), 8);
    assert!(
        env.members()
            .await
            .iter()
            .all(|m| m.worker_id != process_id)
    );
    assert_converged(&env, &ids).await;
    no_failures_no_duplicates(&env, ids.len()).await;
    survivor.stop().await;
}

#[tokio::test]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let node = tokio::task::spawn_blocking(BrokerNode::start)
        .await
        .unwrap();
    let env = env_with(0, 4, node.url()).await;
    let worker = env.spawn_worker();
    let ids = users_in_every_partition(&env, "restart", 30).await;
    env.handle().update_faults(&FaultUpdate {
        latency_ms: Some(300),
        ..FaultUpdate::default()
    });
    patch_all(&env, &ids, "Before").await;
    let pending = behind(&env).await;
    let node = tokio::task::spawn_blocking(move || {
        node.stop_app();
        node
    })
    .await
    .unwrap();
    assert!(
        pending > 0,
        "changes were in flight when the broker stopped"
    );
    // Writes go on while the broker is down: they wait in the outbox.
    patch_all(&env, &ids, "During").await;
    let unpublished = env
        .scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .await;
    assert!(unpublished > 0, "changes committed during the outage");
    let node = tokio::task::spawn_blocking(move || {
        node.start_app();
        node
    })
    .await
    .unwrap();
    patch_all(&env, &ids, "After").await;
    assert_converged(&env, &ids).await;
    no_failures_no_duplicates(&env, ids.len()).await;
    worker.stop().await;
    drop(env);
    tokio::task::spawn_blocking(move || drop(node))
        .await
        .unwrap();
}

#[tokio::test]
async fn lease_expiry_is_judged_by_the_database_clock() {
    // A row heartbeated longer ago than the lease is not a member; a fresh one is, of its
    // own lane only.
    let env = env_with(0, 4, amqp_url()).await;
    let pool = &env.app.db.pool;
    idm_sync::repo::workers::heartbeat(pool, "fresh", "a", "h", &[0, 1])
        .await
        .unwrap();
    idm_sync::repo::workers::heartbeat(pool, "other", "b", "h", &[0])
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO outbound_workers (worker_id, lane, host, heartbeat_at) VALUES ('stale', 'a', 'h', now() - interval '1 minute')",
    )
    .execute(pool)
    .await
    .unwrap();
    let live = idm_sync::repo::workers::live(pool, "a").await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].worker_id, "fresh");
    assert_eq!(live[0].lane, "a");
    assert_eq!(live[0].partitions, vec![0, 1]);
    let all = idm_sync::repo::workers::live_all(pool).await.unwrap();
    let all: Vec<(&str, &str)> = all
        .iter()
        .map(|m| (m.lane.as_str(), m.worker_id.as_str()))
        .collect();
    assert_eq!(all, [("a", "fresh"), ("b", "other")]);
    assert_eq!(
        idm_sync::repo::workers::reap(pool, Duration::from_secs(30))
            .await
            .unwrap(),
        1
    );
    idm_sync::repo::workers::deregister(pool, "fresh")
        .await
        .unwrap();
    assert!(
        idm_sync::repo::workers::live(pool, "a")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        idm_sync::repo::workers::live(pool, "b")
            .await
            .unwrap()
            .len(),
        1
    );
}
