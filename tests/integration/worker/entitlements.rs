//! Access beyond the profile through implicit sync: permission sets, a permission set group, a
//! public group and the role of a managed user reach Salesforce as exactly those grants;
//! removing one revokes it alone; an unknown name and a license mismatch are sync failures
//! while the user's other changes go through; deactivation keeps the grants.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Env, env, wait_until};

/// The user's grants in the emulator's org, by name.
async fn grants(env: &Env, sf_id: &str) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let access = env.sf.access_of(&[sf_id.to_owned()]).await.unwrap();
    let names = |g: &[idm_sync::salesforce::access::Grant]| -> BTreeSet<String> {
        g.iter().map(|g| g.name.clone()).collect()
    };
    match access.get(sf_id) {
        Some(a) => (
            names(&a.permission_sets),
            names(&a.permission_set_groups),
            names(&a.public_groups),
        ),
        None => Default::default(),
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn role_of(env: &Env, sf_id: &str) -> Value {
    env.handle().user(sf_id).unwrap()["UserRoleId"].clone()
}

#[tokio::test]
async fn grants_follow_the_managed_user_and_refusals_fail_alone() {
    let env = env(0).await;
    let worker = env.spawn_worker();
    let mut body = env.user_body("grants@idm-sync.test");
    body["permissionSets"] = json!(["Sales_Operations", "Report_Builder"]);
    body["permissionSetGroups"] = json!(["Sales_Bundle"]);
    body["publicGroups"] = json!(["Sales_Team"]);
    body["userRole"] = json!("VP_Sales");
    let id = crate::helpers::create_managed(&env.app, &body).await;
    let user = env.wait_synced(&id).await;
    let sf_id = user["Id"].as_str().unwrap().to_owned();
    assert_eq!(
        grants(&env, &sf_id).await,
        (
            set(&["Report_Builder", "Sales_Operations"]),
            set(&["Sales_Bundle"]),
            set(&["Sales_Team"])
        )
    );
    let vp = env.handle().access_id("UserRole", "VP_Sales").unwrap();
    assert_eq!(role_of(&env, &sf_id).await, json!(vp));

    // One permission set removed, one group swapped, the role changed: exactly those calls.
    env.patch(&id, "/permissionSets", json!(["Report_Builder"]))
        .await;
    env.patch(&id, "/publicGroups", json!(["Support_Team"]))
        .await;
    env.patch(&id, "/userRole", json!("CEO")).await;
    env.wait_synced(&id).await;
    assert_eq!(
        grants(&env, &sf_id).await,
        (
            set(&["Report_Builder"]),
            set(&["Sales_Bundle"]),
            set(&["Support_Team"])
        )
    );
    let ceo = env.handle().access_id("UserRole", "CEO").unwrap();
    assert_eq!(role_of(&env, &sf_id).await, json!(ceo));

    // An unknown name and a license the profile lacks: the other changes go through, the
    // refused grants become one sync failure naming them.
    env.patch(
        &id,
        "/permissionSets",
        json!([
            "Report_Builder",
            "No_Such_Set",
            "Chatter_Moderator",
            "Support_Console"
        ]),
    )
    .await;
    env.patch(&id, "/sn", json!("Granted")).await;
    wait_until("the refused grants listed as a failure", async || {
        env.failures("true").await["resultCount"] == 1
    })
    .await;
    let failure = env.failures("true").await["result"][0].clone();
    let message = failure["message"].as_str().unwrap();
    assert_eq!(failure["errorCode"], "ACCESS_NOT_GRANTED", "{failure}");
    assert!(
        message.contains("No_Such_Set") && message.contains("Chatter_Moderator"),
        "{message}"
    );
    assert!(!message.contains("Support_Console"), "{message}");
    assert_eq!(env.handle().user(&sf_id).unwrap()["LastName"], "Granted");
    assert_eq!(
        grants(&env, &sf_id).await.0,
        set(&["Report_Builder", "Support_Console"])
    );

    // Fixed in the managed user: the next change brings it in step and clears the failure.
    env.patch(
        &id,
        "/permissionSets",
        json!(["Report_Builder", "Support_Console"]),
    )
    .await;
    env.wait_synced(&id).await;
    wait_until("the failure cleared", async || {
        env.failures("true").await["resultCount"] == 0
    })
    .await;

    // The role idm-sync set is cleared when the managed user has none any more.
    env.patch(&id, "/userRole", json!("")).await;
    env.wait_synced(&id).await;
    assert_eq!(role_of(&env, &sf_id).await, Value::Null);

    // Deactivation keeps the grants (Salesforce keeps them on inactive users).
    env.patch(&id, "/accountStatus", json!("inactive")).await;
    env.wait_synced(&id).await;
    assert_eq!(env.handle().user(&sf_id).unwrap()["IsActive"], false);
    assert_eq!(
        grants(&env, &sf_id).await.0,
        set(&["Report_Builder", "Support_Console"])
    );
    worker.stop().await;
}

#[tokio::test]
async fn with_the_option_a_deactivated_user_loses_its_grants_and_gets_them_back() {
    let env = env(0).await;
    let worker = env.spawn_engine_worker(super::OUTBOUND_MAPPING, env.settings(), |e| {
        e.with_access_removed_on_deactivation(true)
    });
    let mut body = env.user_body("revoked@idm-sync.test");
    body["permissionSets"] = json!(["Sales_Operations"]);
    body["permissionSetGroups"] = json!(["Support_Bundle"]);
    body["publicGroups"] = json!(["Sales_Team"]);
    let id = crate::helpers::create_managed(&env.app, &body).await;
    let sf_id = env.wait_synced(&id).await["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let granted = (
        set(&["Sales_Operations"]),
        set(&["Support_Bundle"]),
        set(&["Sales_Team"]),
    );
    assert_eq!(grants(&env, &sf_id).await, granted);

    env.patch(&id, "/accountStatus", json!("inactive")).await;
    env.wait_synced(&id).await;
    assert_eq!(env.handle().user(&sf_id).unwrap()["IsActive"], false);
    assert_eq!(grants(&env, &sf_id).await, Default::default());

    env.patch(&id, "/accountStatus", json!("active")).await;
    env.wait_synced(&id).await;
    assert_eq!(grants(&env, &sf_id).await, granted);
    worker.stop().await;
}

#[tokio::test]
async fn outbound_recon_puts_back_grants_changed_in_salesforce_and_then_queues_nothing() {
    use super::outbound_recon::{recon, sync_rows};
    let env = env(0).await;
    let worker = env.spawn_worker();
    let mut body = env.user_body("drifted.grants@idm-sync.test");
    body["permissionSets"] = json!(["Sales_Operations"]);
    body["publicGroups"] = json!(["Sales_Team"]);
    body["userRole"] = json!("VP_Sales");
    let id = crate::helpers::create_managed(&env.app, &body).await;
    let sf_id = env.wait_synced(&id).await["Id"]
        .as_str()
        .unwrap()
        .to_owned();

    // In Salesforce: a permission set revoked, another and a second group granted, the role
    // changed.
    let held = env
        .sf
        .access_of(std::slice::from_ref(&sf_id))
        .await
        .unwrap();
    let ops = held[&sf_id].permission_sets[0].record_id.clone();
    for r in env.sf.delete_many(&[ops]).await {
        r.unwrap();
    }
    let handle = env.handle();
    let record = |v: Value| v.as_object().unwrap().clone();
    let added = env
        .sf
        .create_many_of(
            "PermissionSetAssignment",
            &[record(json!({
                "AssigneeId": sf_id,
                "PermissionSetId": handle.access_id("PermissionSet", "Report_Builder").unwrap()
            }))],
        )
        .await;
    added.into_iter().for_each(|r| {
        r.unwrap();
    });
    let members = env
        .sf
        .create_many_of(
            "GroupMember",
            &[record(json!({
                "GroupId": handle.access_id("Group", "Support_Team").unwrap(),
                "UserOrGroupId": sf_id
            }))],
        )
        .await;
    members.into_iter().for_each(|r| {
        r.unwrap();
    });
    let ceo = handle.access_id("UserRole", "CEO").unwrap();
    env.sf
        .update(&sf_id, &record(json!({"UserRoleId": ceo})))
        .await
        .unwrap();

    let rows = sync_rows(&env).await;
    let first = recon(&env, false).await;
    assert_eq!(first["state"], "SUCCESS", "{first}");
    assert_eq!(
        sync_rows(&env).await,
        rows + 1,
        "one repair queued: {first}"
    );
    wait_until("the grants put back", async || {
        grants(&env, &sf_id).await == (set(&["Sales_Operations"]), set(&[]), set(&["Sales_Team"]))
    })
    .await;
    let vp = handle.access_id("UserRole", "VP_Sales").unwrap();
    wait_until("the role put back", async || {
        role_of(&env, &sf_id).await == json!(vp)
    })
    .await;

    // In step now: the next run queues nothing.
    let rows = sync_rows(&env).await;
    let second = recon(&env, false).await;
    assert_eq!(second["state"], "SUCCESS", "{second}");
    assert_eq!(sync_rows(&env).await, rows, "{second}");
    worker.stop().await;
}
