//! Entitlements over HTTP: the access catalog, permission set assignments and group members
//! (create, duplicates, the license rule, set-wise reads with relationship paths, paging,
//! collection and single-record deletes), roles on users, and persistence.

use serde_json::{Value, json};
use sf_emulator::{AccessConfig, Emulator, EmulatorConfig};

use super::support::{TestOrg, V, client, error_of, org, org_with, refresh};

async fn query(org: &TestOrg, soql: &str) -> Value {
    let r = org.get("query").query(&[("q", soql)]).send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{soql}: {body}");
    body
}

fn ids_of(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect()
}

/// Two users of a profile (skipping the integration user).
async fn users_of(org: &TestOrg, profile: &str) -> Vec<String> {
    let pid = org.handle().profile_id(profile).unwrap();
    let page = query(
        org,
        &format!("SELECT Id FROM User WHERE ProfileId = '{pid}' AND IsActive = true LIMIT 2"),
    )
    .await;
    let ids = ids_of(&page);
    assert_eq!(ids.len(), 2, "{profile}: {page}");
    ids
}

fn id(org: &TestOrg, sobject: &str, name: &str) -> String {
    org.handle().access_id(sobject, name).unwrap()
}

fn psa(assignee: &str, fields: Value) -> Value {
    let mut r = json!({"attributes": {"type": "PermissionSetAssignment"}, "AssigneeId": assignee});
    for (k, v) in fields.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

async fn create(org: &TestOrg, records: Vec<Value>) -> Vec<Value> {
    let body = json!({"allOrNone": false, "records": records});
    let r = org.post("composite/sobjects", &body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn delete(org: &TestOrg, ids: &[&str], all_or_none: bool) -> Vec<Value> {
    let r = org
        .http
        .delete(org.data_url("composite/sobjects"))
        .bearer_auth(&org.token)
        .query(&[
            ("ids", ids.join(",")),
            ("allOrNone", all_or_none.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn error_code(result: &Value) -> &str {
    assert_eq!(result["success"], false, "{result}");
    result["errors"][0]["statusCode"].as_str().unwrap()
}

#[tokio::test]
async fn catalog_reads_with_salesforce_key_prefixes() {
    let org = org(20).await;
    let sets = query(
        &org,
        "SELECT Id, Name, Label, IsOwnedByProfile, LicenseId, Type FROM PermissionSet WHERE IsOwnedByProfile = false",
    )
    .await;
    let records = sets["records"].as_array().unwrap();
    // Five regular permission sets and the aggregate permission sets of the two groups.
    assert_eq!(sets["totalSize"], 7, "{sets}");
    assert!(
        records
            .iter()
            .all(|r| r["Id"].as_str().unwrap().starts_with("0PS"))
    );
    assert!(
        records
            .iter()
            .all(|r| r["attributes"]["type"] == "PermissionSet")
    );
    let regular: Vec<&str> = records
        .iter()
        .filter(|r| r["Type"] == "Regular")
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        regular,
        [
            "Sales_Operations",
            "Support_Console",
            "Report_Builder",
            "Api_Integration",
            "Chatter_Moderator"
        ]
    );
    let chatter = records
        .iter()
        .find(|r| r["Name"] == "Chatter_Moderator")
        .unwrap();
    assert_eq!(
        chatter["LicenseId"].as_str().unwrap(),
        id(&org, "UserLicense", "Chatter Free")
    );
    assert!(chatter["LicenseId"].as_str().unwrap().starts_with("100"));
    assert_eq!(
        records.iter().filter(|r| r["Type"] == "Group").count(),
        2,
        "group aggregates are not owned by a profile"
    );

    let owned = query(
        &org,
        "SELECT Id, Name, ProfileId, Profile.Name FROM PermissionSet WHERE IsOwnedByProfile = true",
    )
    .await;
    assert_eq!(owned["totalSize"], 5, "one per profile");
    for r in owned["records"].as_array().unwrap() {
        assert!(r["ProfileId"].as_str().unwrap().starts_with("00e"));
        assert_eq!(r["Profile"]["attributes"]["type"], "Profile");
        assert!(r["Profile"]["Name"].is_string());
        assert!(r["Name"].as_str().unwrap().starts_with("X00e"));
    }

    let groups = query(
        &org,
        "SELECT Id, DeveloperName, MasterLabel FROM PermissionSetGroup",
    )
    .await;
    assert_eq!(groups["totalSize"], 2);
    assert!(ids_of(&groups).iter().all(|i| i.starts_with("0PG")));
    let public = query(
        &org,
        "SELECT Id, DeveloperName, Name, Type FROM Group WHERE Type = 'Regular'",
    )
    .await;
    assert_eq!(public["totalSize"], 3, "the queue is not a Regular group");
    assert!(ids_of(&public).iter().all(|i| i.starts_with("00G")));
    let roles = query(&org, "SELECT Id, DeveloperName, Name FROM UserRole").await;
    assert_eq!(roles["totalSize"], 3);
    assert!(ids_of(&roles).iter().all(|i| i.starts_with("00E")));
    let profiles = query(&org, "SELECT Id, Name, UserLicenseId FROM Profile").await;
    assert_eq!(profiles["totalSize"], 5);
    for p in profiles["records"].as_array().unwrap() {
        assert!(p["Id"].as_str().unwrap().starts_with("00e"));
        assert!(p["UserLicenseId"].as_str().unwrap().starts_with("100"));
    }

    // Paths the emulator does not join are refused the way Salesforce refuses unknown ones.
    let r = org
        .get("query")
        .query(&[("q", "SELECT Id, Assignee.Name FROM PermissionSetAssignment")])
        .send()
        .await
        .unwrap();
    let (status, code, message, _) = error_of(r).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_FIELD"));
    assert!(message.contains("relationship 'Assignee'"), "{message}");
    let r = org
        .get("query")
        .query(&[(
            "q",
            "SELECT Id, PermissionSet.Nope FROM PermissionSetAssignment",
        )])
        .send()
        .await
        .unwrap();
    let (_, code, message, _) = error_of(r).await;
    assert_eq!(code, "INVALID_FIELD");
    assert!(
        message.contains("No such column 'Nope' on entity 'PermissionSet'"),
        "{message}"
    );
}

#[tokio::test]
async fn assignments_follow_salesforce_rules_and_read_set_wise() {
    let org = org(60).await;
    let std = users_of(&org, "Standard User").await;
    let chatter = users_of(&org, "Chatter Free User").await;
    let (s1, s2, c1) = (&std[0], &std[1], &chatter[0]);
    let sales_ops = id(&org, "PermissionSet", "Sales_Operations");
    let moderator = id(&org, "PermissionSet", "Chatter_Moderator");
    let api = id(&org, "PermissionSet", "Api_Integration");
    let bundle = id(&org, "PermissionSetGroup", "Sales_Bundle");
    let owned = query(
        &org,
        &format!(
            "SELECT Id FROM PermissionSet WHERE ProfileId = '{}'",
            org.standard_profile()
        ),
    )
    .await;
    let std_profile_set = ids_of(&owned).remove(0);

    let results = create(
        &org,
        vec![
            psa(s1, json!({"PermissionSetId": sales_ops})),
            psa(s1, json!({"PermissionSetId": sales_ops})),
            psa(s1, json!({"PermissionSetId": moderator})),
            psa(c1, json!({"PermissionSetId": moderator})),
            psa(c1, json!({"PermissionSetId": api})),
            psa(s1, json!({"PermissionSetGroupId": bundle})),
            psa(s1, json!({"PermissionSetId": std_profile_set})),
            psa("005000000000000AAA", json!({"PermissionSetId": sales_ops})),
            psa(&sales_ops, json!({"PermissionSetId": sales_ops})),
            psa(s2, json!({})),
            psa(s2, json!({"PermissionSetId": api})),
        ],
    )
    .await;
    assert_eq!(results.len(), 11);
    assert_eq!(results[0]["success"], true, "{}", results[0]);
    let first = results[0]["id"].as_str().unwrap().to_owned();
    assert!(first.starts_with("0Pa") && first.len() == 18, "{first}");
    assert_eq!(error_code(&results[1]), "DUPLICATE_VALUE");
    assert!(
        results[1]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Duplicate PermissionSetAssignment")
    );
    // A Standard User's license is Salesforce; the moderator set needs Chatter Free, and back.
    assert_eq!(error_code(&results[2]), "FIELD_INTEGRITY_EXCEPTION");
    assert_eq!(results[3]["success"], true, "{}", results[3]);
    assert_eq!(error_code(&results[4]), "FIELD_INTEGRITY_EXCEPTION");
    assert_eq!(results[5]["success"], true, "{}", results[5]);
    let group_assignment = results[5]["id"].as_str().unwrap().to_owned();
    assert_eq!(error_code(&results[6]), "FIELD_INTEGRITY_EXCEPTION");
    assert_eq!(error_code(&results[7]), "INVALID_CROSS_REFERENCE_KEY");
    assert_eq!(error_code(&results[8]), "MALFORMED_ID");
    assert_eq!(error_code(&results[9]), "REQUIRED_FIELD_MISSING");
    assert_eq!(results[10]["success"], true, "{}", results[10]);

    let soql = format!(
        "SELECT Id, AssigneeId, PermissionSetId, PermissionSetGroupId, PermissionSet.Name, PermissionSet.IsOwnedByProfile FROM PermissionSetAssignment WHERE AssigneeId IN ('{s1}', '{c1}') AND PermissionSet.IsOwnedByProfile = false"
    );
    let page = query(&org, &soql).await;
    assert_eq!(page["totalSize"], 3, "{page}");
    let records = page["records"].as_array().unwrap();
    let by_id = |i: &str| records.iter().find(|r| r["Id"] == i).unwrap().clone();
    let plain = by_id(&first);
    assert_eq!(plain["AssigneeId"], json!(s1));
    assert_eq!(plain["PermissionSetId"], json!(sales_ops));
    assert_eq!(plain["PermissionSetGroupId"], Value::Null);
    assert_eq!(
        plain["PermissionSet"]["attributes"]["type"],
        "PermissionSet"
    );
    assert_eq!(plain["PermissionSet"]["Name"], "Sales_Operations");
    assert_eq!(plain["PermissionSet"]["IsOwnedByProfile"], false);
    // The relationship is one nested record, placed where its first column was selected.
    let keys: Vec<&String> = plain.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "attributes",
            "Id",
            "AssigneeId",
            "PermissionSetId",
            "PermissionSetGroupId",
            "PermissionSet"
        ]
    );
    // A group assignment names the group and the group's aggregate permission set.
    let grouped = by_id(&group_assignment);
    assert_eq!(grouped["PermissionSetGroupId"], json!(bundle));
    let aggregate = grouped["PermissionSetId"].as_str().unwrap();
    assert!(aggregate.starts_with("0PS"));
    let agg = query(
        &org,
        &format!("SELECT Type, PermissionSetGroupId FROM PermissionSet WHERE Id = '{aggregate}'"),
    )
    .await;
    assert_eq!(agg["records"][0]["Type"], "Group");
    assert_eq!(agg["records"][0]["PermissionSetGroupId"], json!(bundle));

    // Every user also holds its profile's permission set, which the filter above leaves out.
    let all = query(
        &org,
        &format!("SELECT Id FROM PermissionSetAssignment WHERE AssigneeId IN ('{s1}', '{c1}')"),
    )
    .await;
    assert_eq!(all["totalSize"], 5);
    let profile_assignment = query(
        &org,
        &format!(
            "SELECT Id FROM PermissionSetAssignment WHERE AssigneeId = '{s1}' AND PermissionSet.IsOwnedByProfile = true"
        ),
    )
    .await;
    let profile_assignment = ids_of(&profile_assignment).remove(0);

    // Deletes: per record, in order; an unknown id and a profile's assignment fail alone.
    let gone = format!("0Pa{}", "z".repeat(12));
    let results = delete(
        &org,
        &[&first, &gone, &profile_assignment, &group_assignment],
        false,
    )
    .await;
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["success"], true, "{}", results[0]);
    assert_eq!(results[0]["id"], json!(first));
    assert_eq!(error_code(&results[1]), "ENTITY_IS_DELETED");
    assert_eq!(error_code(&results[2]), "FIELD_INTEGRITY_EXCEPTION");
    assert_eq!(results[3]["success"], true);
    let left = query(&org, &soql).await;
    assert_eq!(left["totalSize"], 1, "{left}");
    assert_eq!(left["records"][0]["AssigneeId"], json!(c1));
    // Deleted, an assignment can be made again.
    let again = create(&org, vec![psa(s1, json!({"PermissionSetId": sales_ops}))]).await;
    assert_eq!(again[0]["success"], true, "{}", again[0]);

    // All or none: one failure keeps every record.
    let keep = again[0]["id"].as_str().unwrap().to_owned();
    let results = delete(&org, &[&keep, "not-an-id"], true).await;
    assert_eq!(error_code(&results[0]), "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_eq!(error_code(&results[1]), "MALFORMED_ID");
    let still = query(
        &org,
        &format!("SELECT Id FROM PermissionSetAssignment WHERE Id = '{keep}'"),
    )
    .await;
    assert_eq!(still["totalSize"], 1);
    let stats = org.handle().stats();
    assert_eq!(
        stats.calls_of("DELETE /services/data/vXX.X/composite/sobjects"),
        2
    );
}

#[tokio::test]
async fn group_members_create_idempotently_and_delete() {
    let org = org(30).await;
    let users = users_of(&org, "Standard User").await;
    let sales = id(&org, "Group", "Sales_Team");
    let queue = id(&org, "Group", "Support_Queue");
    let member = |user: &str, group: &str| json!({"attributes": {"type": "GroupMember"}, "GroupId": group, "UserOrGroupId": user});
    let results = create(
        &org,
        vec![
            member(&users[0], &sales),
            member(&users[0], &sales),
            member(&users[0], &queue),
            member(&users[1], &id(&org, "PermissionSet", "Sales_Operations")),
            member(&sales, &sales),
            json!({"attributes": {"type": "GroupMember"}, "GroupId": sales}),
        ],
    )
    .await;
    assert_eq!(results[0]["success"], true, "{}", results[0]);
    let m = results[0]["id"].as_str().unwrap().to_owned();
    assert!(m.starts_with("011"), "{m}");
    // Documented: creating a record that matches an existing one returns the existing one.
    assert_eq!(results[1]["success"], true);
    assert_eq!(results[1]["id"], json!(m));
    assert_eq!(results[2]["success"], true);
    assert_eq!(error_code(&results[3]), "MALFORMED_ID");
    assert_eq!(error_code(&results[4]), "FIELD_INTEGRITY_EXCEPTION");
    assert_eq!(error_code(&results[5]), "REQUIRED_FIELD_MISSING");

    let soql = format!(
        "SELECT Id, GroupId, UserOrGroupId FROM GroupMember WHERE UserOrGroupId IN ('{}', '{}') AND Group.Type = 'Regular'",
        users[0], users[1]
    );
    let page = query(&org, &soql).await;
    assert_eq!(
        page["totalSize"], 1,
        "the queue membership is filtered out: {page}"
    );
    assert_eq!(page["records"][0]["GroupId"], json!(sales));
    assert_eq!(page["records"][0]["attributes"]["type"], "GroupMember");

    let path = format!("sobjects/GroupMember/{m}");
    let r = org.get(&path).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["UserOrGroupId"], json!(users[0]));
    let r = org
        .patch(&path, &json!({"GroupId": queue}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405, "GroupMember has no update call");
    let r = org
        .http
        .delete(org.data_url(&path))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(org.get(&path).send().await.unwrap().status(), 404);
    assert_eq!(query(&org, &soql).await["totalSize"], 0);
}

#[tokio::test]
async fn single_record_assignment_rest() {
    let org = org(20).await;
    let user = users_of(&org, "Standard User").await.remove(0);
    let body =
        json!({"AssigneeId": user, "PermissionSetId": id(&org, "PermissionSet", "Report_Builder")});
    let r = org
        .post("sobjects/PermissionSetAssignment", &body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let a = created["id"].as_str().unwrap().to_owned();
    assert!(a.starts_with("0Pa"));
    let r = org
        .post("sobjects/PermissionSetAssignment", &body)
        .send()
        .await
        .unwrap();
    let (status, code, _, _) = error_of(r).await;
    assert_eq!((status, code.as_str()), (400, "DUPLICATE_VALUE"));

    let path = format!("sobjects/PermissionSetAssignment/{a}");
    let got: Value = org.get(&path).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["AssigneeId"], json!(user));
    assert_eq!(got["IsActive"], true);
    assert_eq!(
        got["attributes"]["url"],
        json!(format!(
            "/services/data/{V}/sobjects/PermissionSetAssignment/{a}"
        ))
    );
    // Documented: an assignment is not re-pointed; delete it and create another.
    let r = org
        .patch(&path, &json!({"AssigneeId": user}))
        .send()
        .await
        .unwrap();
    let (status, code, _, _) = error_of(r).await;
    assert_eq!(
        (status, code.as_str()),
        (400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    );
    let r = org
        .patch(&path, &json!({"ExpirationDate": "2030-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let got: Value = org.get(&path).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["ExpirationDate"], "2030-01-01T00:00:00.000+0000");

    let del = || {
        org.http
            .delete(org.data_url(&path))
            .bearer_auth(&org.token)
            .send()
    };
    assert_eq!(del().await.unwrap().status(), 204);
    assert_eq!(del().await.unwrap().status(), 404);
    let describe: Value = org
        .get("sobjects/PermissionSetAssignment/describe")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(describe["keyPrefix"], "0Pa");
}

#[tokio::test]
async fn generated_assignments_page_like_users() {
    let org = org_with(EmulatorConfig {
        users: 1200,
        access: AccessConfig {
            extra_permission_sets: 5,
            extra_groups: 2,
            assignments_per_user: 3,
            memberships_per_user: 2,
        },
        ..EmulatorConfig::default()
    })
    .await;
    let soql = "SELECT Id, AssigneeId, PermissionSet.Name FROM PermissionSetAssignment WHERE PermissionSet.IsOwnedByProfile = false";
    let mut page = query(&org, soql).await;
    // Every user but the Automated Process user, three each.
    assert_eq!(page["totalSize"], 1199 * 3);
    let mut seen = ids_of(&page);
    while page["done"] == false {
        let url = page["nextRecordsUrl"].as_str().unwrap().to_owned();
        page = org
            .http
            .get(format!("{}{url}", org.base))
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(ids_of(&page));
    }
    assert_eq!(seen.len(), 1199 * 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 1199 * 3);

    let two = users_of(&org, "Standard User").await;
    let mine = query(
        &org,
        &format!(
            "SELECT Id, PermissionSetId, PermissionSetGroupId FROM PermissionSetAssignment WHERE AssigneeId IN ('{}', '{}') AND PermissionSet.IsOwnedByProfile = false",
            two[0], two[1]
        ),
    )
    .await;
    assert_eq!(mine["totalSize"], 6);
    let members = query(
        &org,
        &format!(
            "SELECT Id FROM GroupMember WHERE UserOrGroupId = '{}' AND Group.Type = 'Regular'",
            two[0]
        ),
    )
    .await;
    assert_eq!(members["totalSize"], 2);
    let counts: Value = org
        .http
        .get(format!("{}/__emulator/access", org.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Plus one profile-owned assignment per user.
    assert_eq!(counts["PermissionSetAssignment"], 1199 * 3 + 1200);
    assert_eq!(counts["GroupMember"], 1199 * 2);
    assert_eq!(counts["PermissionSet"], 5 + 5 + 5 + 2);
    assert_eq!(counts["Group"], 4 + 2);
}

#[tokio::test]
async fn roles_profiles_and_deactivation_on_users() {
    let org = org(20).await;
    let user = users_of(&org, "Standard User").await.remove(0);
    let path = format!("sobjects/User/{user}");
    let role = id(&org, "UserRole", "Sales_Rep");
    let r = org
        .patch(&path, &json!({"UserRoleId": &role[..15]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let page = query(
        &org,
        &format!("SELECT Id, UserRoleId FROM User WHERE Id = '{user}'"),
    )
    .await;
    assert_eq!(
        page["records"][0]["UserRoleId"],
        json!(role),
        "stored as 18 chars"
    );
    let r = org
        .patch(
            &path,
            &json!({"UserRoleId": id(&org, "PermissionSet", "Sales_Operations")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "MALFORMED_ID");
    let unknown = format!("00E{}", "z".repeat(12));
    let r = org
        .patch(&path, &json!({"UserRoleId": unknown}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "INVALID_CROSS_REFERENCE_KEY");

    let sales_ops = id(&org, "PermissionSet", "Sales_Operations");
    let made = create(
        &org,
        vec![psa(&user, json!({"PermissionSetId": sales_ops}))],
    )
    .await;
    assert_eq!(made[0]["success"], true);
    // Deactivating keeps assignments (users are never deleted).
    let r = org
        .patch(&path, &json!({"IsActive": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (org_ref, user_ref) = (&org, &user);
    let profile_set = |profile: String| async move {
        let p = query(
            org_ref,
            &format!(
                "SELECT PermissionSetId, PermissionSet.ProfileId FROM PermissionSetAssignment WHERE AssigneeId = '{user_ref}' AND PermissionSet.IsOwnedByProfile = true"
            ),
        )
        .await;
        assert_eq!(p["totalSize"], 1, "{p}");
        assert_eq!(
            p["records"][0]["PermissionSet"]["ProfileId"],
            json!(profile)
        );
    };
    profile_set(org.standard_profile()).await;
    let kept = query(
        &org,
        &format!("SELECT Id FROM PermissionSetAssignment WHERE AssigneeId = '{user}' AND PermissionSet.IsOwnedByProfile = false"),
    )
    .await;
    assert_eq!(kept["totalSize"], 1);
    // A new profile brings its own permission set.
    let chatter = org.handle().profile_id("Chatter Free User").unwrap();
    let r = org
        .patch(&path, &json!({"ProfileId": chatter}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    profile_set(chatter).await;
    // Users still have no delete call.
    let r = delete(&org, &[&user], false).await;
    assert_eq!(error_code(&r[0]), "INVALID_TYPE_FOR_OPERATION");
}

#[tokio::test]
async fn assignments_and_members_persist_across_restart() {
    let dir = std::env::temp_dir().join(format!("sf-emu-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let _ = std::fs::remove_file(&path);
    let config = EmulatorConfig {
        users: 10,
        state_file: Some(path.clone()),
        ..Default::default()
    };
    let start = || async {
        let running = Emulator::build(config.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
            .start();
        let base = running.base_url().to_owned();
        let http = client();
        let token = refresh(&http, &base, "idm-sync-emulator-refresh-token").await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        TestOrg {
            running,
            base,
            http,
            token,
        }
    };
    let org = start().await;
    let user = users_of(&org, "Standard User").await.remove(0);
    let made = create(
        &org,
        vec![
            psa(&user, json!({"PermissionSetGroupId": id(&org, "PermissionSetGroup", "Support_Bundle")})),
            json!({"attributes": {"type": "GroupMember"}, "GroupId": id(&org, "Group", "Engineering_Team"), "UserOrGroupId": user}),
        ],
    )
    .await;
    assert!(made.iter().all(|r| r["success"] == true), "{made:?}");
    let soql = format!(
        "SELECT Id, PermissionSetGroupId FROM PermissionSetAssignment WHERE AssigneeId = '{user}'"
    );
    let before = query(&org, &soql).await;
    org.running.stop().await.unwrap();

    let org = start().await;
    let after = query(&org, &soql).await;
    assert_eq!(after["records"], before["records"]);
    assert_eq!(after["totalSize"], 2, "the group's and the profile's");
    let members = query(
        &org,
        &format!("SELECT Id FROM GroupMember WHERE UserOrGroupId = '{user}'"),
    )
    .await;
    assert_eq!(ids_of(&members), [made[1]["id"].as_str().unwrap()]);
    org.running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
