//! `idm-sync events` as its own process, the way compose runs it: killed mid-stream (SIGKILL,
//! no goodbye), another replica takes over when the lease runs out and resumes from the stored
//! replay id: nothing lost, nothing written twice.

use serde_json::json;

use super::env;
use crate::helpers::RoleProcess;

fn events_process(env: &super::Env) -> RoleProcess {
    let mut command = RoleProcess::command("events", &env.conf.0, &env.app.db.url);
    command.env("IDM_EVENTS_LEASE_SECS", "2");
    RoleProcess::spawn(command)
}

#[tokio::test]
async fn a_killed_subscriber_is_taken_over_with_nothing_lost_and_nothing_written_twice() {
    let env = env(3).await;
    let mut first = events_process(&env);
    env.wait_subscribed().await;
    let names: Vec<String> = (0..3)
        .map(|i| format!("events.kill{i}@idm-sync.test"))
        .collect();
    let ids: Vec<String> = names.iter().map(|n| env.admin_create(n)).collect();
    for n in &names {
        env.wait_managed(n, |_| true).await;
    }
    // Edits flowing when the process dies, and more while no subscriber runs.
    for (i, id) in ids.iter().enumerate() {
        env.admin_update(id, json!({"LastName": format!("Before{i}")}));
    }
    first.kill();
    for (i, id) in ids.iter().enumerate() {
        env.admin_update(id, json!({"LastName": format!("After{i}")}));
    }
    let _second = events_process(&env);
    for (i, n) in names.iter().enumerate() {
        let sn = format!("After{i}");
        env.wait_managed(n, |u| u["sn"] == sn.as_str()).await;
    }
    // Each user: one outbox row for its creation and one per change of its values; a batch
    // applied again after the takeover wrote nothing.
    for n in &names {
        let rows = env
            .scalar(&format!(
                "SELECT count(*) FROM outbox o JOIN managed_objects m ON m.id = o.object_id \
                 WHERE m.body->>'userName' = '{n}'"
            ))
            .await;
        assert!(
            (2..=3).contains(&rows),
            "{n}: {rows} managed writes for a create and two edits (the first may have been overtaken)"
        );
    }
    let holders = env
        .scalar("SELECT count(DISTINCT holder) FROM event_subscriptions")
        .await;
    assert_eq!(holders, 1);
}
