//! The client's access primitives against the emulator: the catalog by name, grants written
//! with sObject Collections (create, delete by ids) and read back set-wise by user.

use std::collections::BTreeSet;

use futures_util::TryStreamExt;
use idm_sync::salesforce::{Record, SalesforceError};
use serde_json::json;

use super::support::{client, start_org};

fn record(fields: serde_json::Value) -> Record {
    serde_json::from_value(fields).unwrap()
}

#[tokio::test]
async fn grants_are_written_by_name_read_back_per_user_and_deleted_by_id() {
    let org = start_org(5, false).await;
    let sf = client(org.base_url());
    let catalog = sf.access_catalog().await.unwrap();
    // Regular permission sets only: neither the profiles' nor the groups' own ones.
    assert!(catalog.permission_sets.contains_key("Sales_Operations"));
    assert!(
        catalog
            .permission_sets
            .values()
            .all(|p| p.id.starts_with("0PS")),
        "{catalog:?}"
    );
    assert_eq!(catalog.permission_sets.len(), 5, "{catalog:?}");
    assert!(!catalog.permission_set_groups.is_empty());
    assert!(!catalog.public_groups.is_empty());
    assert!(!catalog.roles.is_empty());
    let standard = org.handle().profile_id("Standard User").unwrap();
    assert!(catalog.profile_licenses.contains_key(&standard));

    let mut users = Vec::new();
    let mut pages = std::pin::pin!(sf.query(&format!(
        "SELECT Id FROM User WHERE ProfileId = '{standard}' AND IsActive = true LIMIT 2"
    )));
    while let Some(page) = pages.try_next().await.unwrap() {
        users.extend(
            page.records
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(users.len(), 2);
    let (ann, bob) = (&users[0], &users[1]);
    let ps = |name: &str| catalog.permission_sets[name].id.clone();
    let psg = catalog.permission_set_groups.iter().next().unwrap();
    let group = catalog.public_groups.iter().next().unwrap();

    let assigned = sf
        .create_many_of(
            "PermissionSetAssignment",
            &[
                record(json!({"AssigneeId": ann, "PermissionSetId": ps("Sales_Operations")})),
                record(json!({"AssigneeId": ann, "PermissionSetId": ps("Report_Builder")})),
                record(json!({"AssigneeId": ann, "PermissionSetGroupId": psg.1})),
                record(json!({"AssigneeId": bob, "PermissionSetId": ps("Report_Builder")})),
                // Twice the same: Salesforce refuses the second.
                record(json!({"AssigneeId": bob, "PermissionSetId": ps("Report_Builder")})),
                // A license Standard User lacks.
                record(json!({"AssigneeId": bob, "PermissionSetId": ps("Chatter_Moderator")})),
            ],
        )
        .await;
    assert!(assigned[..4].iter().all(Result::is_ok), "{assigned:?}");
    let code = |r: &Result<String, SalesforceError>| match r {
        Err(SalesforceError::RecordRejected { errors }) => errors[0].error_code.clone(),
        other => panic!("expected a rejected record, got {other:?}"),
    };
    assert_eq!(code(&assigned[4]), "DUPLICATE_VALUE");
    assert_eq!(code(&assigned[5]), "FIELD_INTEGRITY_EXCEPTION");
    let member = sf
        .create_many_of(
            "GroupMember",
            &[record(json!({"GroupId": group.1, "UserOrGroupId": bob}))],
        )
        .await;
    assert!(member[0].is_ok(), "{member:?}");

    let access = sf.access_of(&users).await.unwrap();
    let names = |grants: &[idm_sync::salesforce::access::Grant]| -> BTreeSet<String> {
        grants.iter().map(|g| g.name.clone()).collect()
    };
    let of_ann = &access[ann];
    assert_eq!(
        names(&of_ann.permission_sets),
        BTreeSet::from(["Report_Builder".to_owned(), "Sales_Operations".to_owned()])
    );
    assert_eq!(
        names(&of_ann.permission_set_groups),
        BTreeSet::from([psg.0.clone()])
    );
    assert!(of_ann.public_groups.is_empty());
    let of_bob = &access[bob];
    assert_eq!(
        names(&of_bob.permission_sets),
        BTreeSet::from(["Report_Builder".to_owned()])
    );
    assert_eq!(
        names(&of_bob.public_groups),
        BTreeSet::from([group.0.clone()])
    );

    // Removing one grant deletes its record and nothing else.
    let sales = of_ann
        .permission_sets
        .iter()
        .find(|g| g.name == "Sales_Operations")
        .unwrap();
    let deleted = sf
        .delete_many(&[sales.record_id.clone(), "not an id".to_owned()])
        .await;
    assert_eq!(deleted[0].as_ref().unwrap(), &sales.record_id);
    assert!(deleted[1].is_err());
    let after = sf.access_of(&users).await.unwrap();
    assert_eq!(
        names(&after[ann].permission_sets),
        BTreeSet::from(["Report_Builder".to_owned()])
    );
    assert_eq!(after[bob], access[bob].clone());
}
