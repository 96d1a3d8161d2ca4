//! `enableSync: false` on the outbound mapping: the worker acknowledges managed changes without
//! a Salesforce call (as IDM, implicit sync is off); once it is on again, a resync brings the
//! users changed meanwhile over.

use serde_json::Value;

use super::{Env, env, wait_until};

fn set_outbound_enable_sync(env: &Env, on: bool) {
    let path = env.conf.join("sync.json");
    let mut sync: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let outbound = &mut sync["mappings"][1];
    assert_eq!(outbound["name"], "managedUser_systemSalesforceUser");
    outbound["enableSync"] = Value::Bool(on);
    std::fs::write(&path, sync.to_string()).unwrap();
}

#[tokio::test]
async fn with_enable_sync_off_changes_are_acknowledged_and_nothing_reaches_salesforce() {
    let env = env(0).await;
    set_outbound_enable_sync(&env, false);
    let worker = env.spawn_worker();
    let calls_before = env.org.handle().stats().data_calls();

    let off = env.create("while.off@idm-sync.test").await;
    // The worker took the change and acknowledged it...
    wait_until("the worker acknowledges the change", async || {
        worker.stats.per_partition().iter().sum::<u64>() >= 1
    })
    .await;
    // ...without a Salesforce call, a link or a failure.
    let stats = env.org.handle().stats();
    assert_eq!(
        (stats.data_calls(), stats.records_written),
        (calls_before, 0)
    );
    assert!(
        env.org
            .handle()
            .user_by_username("while.off@idm-sync.test")
            .is_none()
    );
    assert_eq!(env.linked(&off).await, None);
    assert_eq!(env.failures("true").await["resultCount"], 0);
    worker.stop().await;

    // On again: new changes sync, and a resync brings over the one made while it was off.
    set_outbound_enable_sync(&env, true);
    let worker = env.spawn_worker();
    let on = env.create("while.on@idm-sync.test").await;
    env.wait_synced(&on).await;
    assert_eq!(env.linked(&off).await, None);
    let res = env
        .app
        .post("/sync?_action=resync&mapping=managedUser_systemSalesforceUser")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sf = env.wait_synced(&off).await;
    assert_eq!(sf["Username"], "while.off@idm-sync.test");
    worker.stop().await;
}
