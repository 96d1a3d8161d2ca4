//! Grants read by inbound reconciliation: a Salesforce user's permission sets, permission set
//! groups, public groups and role become the managed user's, read set-wise (the assignments
//! inline in the users' query, one membership query per page, the roles once), and an
//! unchanged re-run writes nothing.

use idm_sync::recon::ReconSettings;
use idm_sync::salesforce::Record;
use serde_json::{Value, json};
use sf_emulator::FaultUpdate;

use super::support::{Env, env, record, run};
use crate::salesforce::support::{QUERY, QUERY_MORE};

fn id_of(env: &Env, sobject: &str, name: &str) -> String {
    env._org.handle().access_id(sobject, name).unwrap()
}

/// Grants `user` what `grants` names, the way an administrator would in Salesforce.
async fn grant(env: &Env, user: &str, sets: &[&str], groups: &[&str], public: &[&str]) {
    let mut assignments: Vec<Record> = Vec::new();
    for name in sets {
        assignments.push(record(json!({
            "AssigneeId": user, "PermissionSetId": id_of(env, "PermissionSet", name)
        })));
    }
    for name in groups {
        assignments.push(record(json!({
            "AssigneeId": user, "PermissionSetGroupId": id_of(env, "PermissionSetGroup", name)
        })));
    }
    let members: Vec<Record> = public
        .iter()
        .map(|name| record(json!({"GroupId": id_of(env, "Group", name), "UserOrGroupId": user})))
        .collect();
    for (object, records) in [
        ("PermissionSetAssignment", assignments),
        ("GroupMember", members),
    ] {
        if !records.is_empty() {
            for r in env.sf.create_many_of(object, &records).await {
                r.unwrap();
            }
        }
    }
}

fn queries(env: &Env) -> u64 {
    let s = env._org.handle().stats();
    s.calls_of(QUERY) + s.calls_of(QUERY_MORE)
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn recon_reads_every_grant_set_wise_and_an_unchanged_run_writes_nothing() {
    let env = env(450).await;
    let people = env.people().await;
    let id = |i: usize| people[i]["Id"].as_str().unwrap().to_owned();
    let (first, last) = (id(0), id(people.len() - 1));
    grant(
        &env,
        &first,
        &["Sales_Operations", "Report_Builder"],
        &["Sales_Bundle"],
        &["Sales_Team"],
    )
    .await;
    // Users across the 300-user pages (ranged) and on the last, smaller page (listed).
    for i in [199, 200, 299, 300, people.len() - 1] {
        grant(&env, &id(i), &[], &[], &["Support_Team"]).await;
    }
    let vp = id_of(&env, "UserRole", "VP_Sales");
    env.sf
        .update(&first, &record(json!({"UserRoleId": vp})))
        .await
        .unwrap();

    let engine = env.engine_with(ReconSettings {
        source_batch_size: 300,
        ..ReconSettings::default()
    });
    // One assignment inline per user: the rest of a user's come through the child
    // relationship's own nextRecordsUrl.
    env._org.handle().update_faults(&FaultUpdate {
        subquery_inline_rows: Some(1),
        ..FaultUpdate::default()
    });
    env._org.handle().reset_stats();
    let summary = run(&engine).await;
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    let read = queries(&env);

    let user = env.linked_user(&first).await;
    assert_eq!(
        names(&user["permissionSets"]),
        ["Report_Builder", "Sales_Operations"]
    );
    assert_eq!(names(&user["permissionSetGroups"]), ["Sales_Bundle"]);
    assert_eq!(names(&user["publicGroups"]), ["Sales_Team"]);
    assert_eq!(user["userRole"], "VP_Sales");
    for i in [199, 200, 299, 300] {
        let other = env.linked_user(&id(i)).await;
        assert_eq!(names(&other["publicGroups"]), ["Support_Team"], "user {i}");
        assert_eq!(other["permissionSets"], json!([]), "user {i}");
        assert_eq!(other["userRole"], Value::Null, "user {i}");
    }
    assert_eq!(
        names(&env.linked_user(&last).await["publicGroups"]),
        ["Support_Team"]
    );
    let plain = env.linked_user(&id(1)).await;
    assert_eq!(plain["publicGroups"], json!([]));
    assert_eq!(plain["permissionSetGroups"], json!([]));

    // Pages of users (the autoproc users too), the first user's two child pages, the
    // memberships in one query per 300 users gathered (a last, smaller batch as id lists of at
    // most 200), the roles read once: never a query per user.
    let pages = env.sf_users().await.len().div_ceil(300) as u64;
    assert!(
        read <= 3 * pages + 3,
        "{read} queries for {pages} pages of users"
    );

    // Unchanged: nothing written.
    let (rev, outbox) = (env.max_rev().await, env.outbox().await);
    let again = run(&engine).await;
    assert_eq!(again["state"], "SUCCESS", "{again}");
    assert_eq!(env.max_rev().await, rev);
    assert_eq!(env.outbox().await, outbox);

    // One assignment removed in Salesforce: that user alone changes, by exactly that.
    let held = env
        .sf
        .access_of(std::slice::from_ref(&first))
        .await
        .unwrap();
    let report = held[&first]
        .permission_sets
        .iter()
        .find(|g| g.name == "Report_Builder")
        .unwrap()
        .record_id
        .clone();
    for r in env.sf.delete_many(&[report]).await {
        r.unwrap();
    }
    let before = env.linked_user(&first).await;
    run(&engine).await;
    let after = env.linked_user(&first).await;
    assert_eq!(names(&after["permissionSets"]), ["Sales_Operations"]);
    assert_eq!(after["publicGroups"], before["publicGroups"]);
    assert_eq!(env.max_rev().await, rev + 1, "one managed user written");

    // reconById reads the one user's grants too.
    grant(&env, &id(1), &["Report_Builder"], &[], &["Sales_Team"]).await;
    let by_id = env.recon_by_id(&id(1)).await;
    assert_eq!(by_id["state"], "SUCCESS", "{by_id}");
    let one = env.linked_user(&id(1)).await;
    assert_eq!(names(&one["permissionSets"]), ["Report_Builder"]);
    assert_eq!(names(&one["publicGroups"]), ["Sales_Team"]);
}

/// An org that refuses id ranges on `GroupMember.UserOrGroupId`: the run lists the ids
/// instead (200 a query) and reads the same memberships; it tries the range once.
#[tokio::test]
async fn memberships_are_listed_by_id_where_ranges_are_refused() {
    let env = env(450).await;
    let people = env.people().await;
    let ids: Vec<String> = [0, 250, people.len() - 1]
        .iter()
        .map(|i| people[*i]["Id"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        grant(&env, id, &[], &[], &["Support_Team"]).await;
    }
    env._org.handle().update_faults(&FaultUpdate {
        refuse_member_ranges: Some(true),
        ..FaultUpdate::default()
    });
    env._org.handle().reset_stats();
    let summary = run(&env.engine()).await;
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    let read = queries(&env);
    for id in &ids {
        let user = env.linked_user(id).await;
        assert_eq!(names(&user["publicGroups"]), ["Support_Team"], "{id}");
    }
    // One page of users, one refused range, ⌈users/200⌉ id lists, the roles: no query per user.
    let users = env.sf_users().await.len() as u64;
    assert!(read <= 1 + 1 + users.div_ceil(200) + 1, "{read} queries");
}
