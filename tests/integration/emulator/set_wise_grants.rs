//! Reading grants set-wise over HTTP, as the service's inbound reconciliation does: one User
//! query per page carrying the `PermissionSetAssignments` subquery (exact child rows, `null`
//! without any, child paging through the child's own `nextRecordsUrl`, child rows counted
//! toward the page), memberships read by ranges of user Id (in `ORDER BY Id` order, 15- or
//! 18-char bounds), and duplicate memberships through sObject Collections.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sf_emulator::{AccessConfig, EmulatorConfig};

use super::support::{TestOrg, V, error_of, org, org_with};

const GRANTS: &str = "SELECT Id, Username, (SELECT Id, PermissionSetGroupId, PermissionSet.Name, PermissionSetGroup.DeveloperName FROM PermissionSetAssignments WHERE PermissionSet.IsOwnedByProfile = false) FROM User";

async fn get_json(req: reqwest::RequestBuilder) -> Value {
    let r = req
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn query(org: &TestOrg, soql: &str) -> Value {
    get_json(org.get("query").query(&[("q", soql)])).await
}

/// A `nextRecordsUrl`, followed.
async fn follow(org: &TestOrg, url: &str) -> Value {
    let req = org
        .http
        .get(format!("{}{url}", org.base))
        .bearer_auth(&org.token);
    get_json(req).await
}

/// Every record of a query, following `nextRecordsUrl` (pages of 200 here).
async fn query_all(org: &TestOrg, soql: &str) -> Vec<Value> {
    let mut page = query(org, soql).await;
    let mut records = page["records"].as_array().unwrap().clone();
    while let Some(next) = page["nextRecordsUrl"].as_str().map(str::to_owned) {
        page = follow(org, &next).await;
        records.extend(page["records"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(page["totalSize"], records.len(), "{soql}");
    records
}

async fn query_error(org: &TestOrg, soql: &str) -> (u16, String, String) {
    let r = org.get("query").query(&[("q", soql)]).send().await.unwrap();
    let (status, code, message, _) = error_of(r).await;
    (status, code, message)
}

async fn create(org: &TestOrg, all_or_none: bool, records: Vec<Value>) -> Vec<Value> {
    let body = json!({"allOrNone": all_or_none, "records": records});
    let r = org.post("composite/sobjects", &body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn id(org: &TestOrg, sobject: &str, name: &str) -> String {
    org.handle().access_id(sobject, name).unwrap()
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

fn ids_of(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| str_of(&r["Id"]))
        .collect()
}

fn attributes(sobject: &str, id: &str) -> Value {
    json!({"type": sobject, "url": format!("/services/data/{V}/sobjects/{sobject}/{id}")})
}

/// Active Standard User ids (skipping the integration user).
async fn standard_users(org: &TestOrg, n: usize) -> Vec<String> {
    let pid = org.standard_profile();
    let page = query(
        org,
        &format!("SELECT Id FROM User WHERE ProfileId = '{pid}' AND IsActive = true LIMIT {n}"),
    )
    .await;
    let ids = ids_of(&page);
    assert_eq!(ids.len(), n, "{page}");
    ids
}

#[tokio::test]
async fn the_subquery_returns_each_users_exact_grants_and_null_without() {
    let org = org(30).await;
    let users = standard_users(&org, 3).await;
    let (u1, u2, u3) = (&users[0], &users[1], &users[2]);
    let sales_ops = id(&org, "PermissionSet", "Sales_Operations");
    let report = id(&org, "PermissionSet", "Report_Builder");
    let bundle = id(&org, "PermissionSetGroup", "Support_Bundle");
    let psa = |user: &str, field: &str, value: &str| json!({"attributes": {"type": "PermissionSetAssignment"}, "AssigneeId": user, field: value});
    let made = create(
        &org,
        true,
        vec![
            psa(u1, "PermissionSetId", &sales_ops),
            psa(u1, "PermissionSetGroupId", &bundle),
            psa(u2, "PermissionSetId", &report),
        ],
    )
    .await;
    let made: Vec<String> = made.iter().map(|r| str_of(&r["id"])).collect();
    let aggregate = query(
        &org,
        &format!("SELECT Id, Name FROM PermissionSet WHERE PermissionSetGroupId = '{bundle}'"),
    )
    .await["records"][0]
        .clone();

    let soql = format!("{GRANTS} WHERE Id IN ('{u1}', '{u2}', '{u3}') ORDER BY Id");
    let page = query(&org, &soql).await;
    assert_eq!(page["totalSize"], 3, "{page}");
    assert_eq!(page["done"], true);
    let by_user: BTreeMap<String, Value> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (str_of(&r["Id"]), r.clone()))
        .collect();
    let expected_u1 = json!({
        "totalSize": 2,
        "done": true,
        "records": [
            {
                "attributes": attributes("PermissionSetAssignment", &made[0]),
                "Id": made[0],
                "PermissionSetGroupId": null,
                "PermissionSet": {"attributes": attributes("PermissionSet", &sales_ops), "Name": "Sales_Operations"},
                "PermissionSetGroup": null,
            },
            {
                "attributes": attributes("PermissionSetAssignment", &made[1]),
                "Id": made[1],
                "PermissionSetGroupId": bundle,
                "PermissionSet": {"attributes": attributes("PermissionSet", &str_of(&aggregate["Id"])), "Name": aggregate["Name"]},
                "PermissionSetGroup": {"attributes": attributes("PermissionSetGroup", &bundle), "DeveloperName": "Support_Bundle"},
            },
        ],
    });
    assert_eq!(by_user[u1]["PermissionSetAssignments"], expected_u1);
    assert_eq!(by_user[u1]["attributes"], attributes("User", u1));
    assert!(by_user[u1]["Username"].is_string());
    let u2_rows = &by_user[u2]["PermissionSetAssignments"];
    assert_eq!(u2_rows["totalSize"], 1);
    assert_eq!(ids_of(u2_rows), vec![made[2].clone()]);
    assert_eq!(
        u2_rows["records"][0]["PermissionSet"]["Name"],
        "Report_Builder"
    );
    // No matching child row: the key is there, with null (its profile's assignment is filtered).
    let u3_record = by_user[u3].as_object().unwrap();
    assert_eq!(
        u3_record.get("PermissionSetAssignments"),
        Some(&Value::Null)
    );

    // Names are case-insensitive; the answer keys the relationship by its own name.
    let lower = soql.replace(
        "FROM PermissionSetAssignments",
        "from user.permissionsetassignments",
    );
    let page = query(&org, &lower).await;
    assert_eq!(
        page["records"][0]["PermissionSetAssignments"]["totalSize"],
        2
    );

    // A deleted assignment leaves the next read.
    let r = org
        .http
        .delete(org.data_url(&format!("sobjects/PermissionSetAssignment/{}", made[0])))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let page = query(&org, &soql).await;
    let u1_rows = &page["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Id"] == json!(u1))
        .unwrap()["PermissionSetAssignments"];
    assert_eq!(ids_of(u1_rows), vec![made[1].clone()]);

    // What the emulator refuses, as Salesforce words it.
    let (status, code, message) =
        query_error(&org, "SELECT Id, (SELECT Id FROM Assignments) FROM User").await;
    assert_eq!((status, code.as_str()), (400, "INVALID_TYPE"));
    assert!(
        message
            .contains("Didn't understand relationship 'Assignments' in FROM part of query call."),
        "{message}"
    );
    let (_, code, _) = query_error(
        &org,
        "SELECT Id, (SELECT Id FROM PermissionSetAssignments) FROM GroupMember",
    )
    .await;
    assert_eq!(code, "INVALID_TYPE");
    let (_, code, message) = query_error(
        &org,
        "SELECT Id, (SELECT Id, Nope FROM PermissionSetAssignments) FROM User",
    )
    .await;
    assert_eq!(code, "INVALID_FIELD", "{message}");
}

/// Every user's assignments to sets no profile owns, in creation order, from one plain query.
async fn grants_by_user(org: &TestOrg) -> BTreeMap<String, Vec<String>> {
    let records = query_all(
        org,
        "SELECT Id, AssigneeId FROM PermissionSetAssignment WHERE PermissionSet.IsOwnedByProfile = false",
    )
    .await;
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &records {
        by.entry(str_of(&r["AssigneeId"]))
            .or_default()
            .push(str_of(&r["Id"]));
    }
    by
}

#[tokio::test]
async fn child_rows_page_through_their_own_locator_and_count_toward_the_page() {
    let org = org_with(EmulatorConfig {
        users: 200,
        access: AccessConfig {
            assignments_per_user: 5,
            ..AccessConfig::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let faults = org.admin_faults(json!({})).await;
    assert_eq!(faults["subqueryInlineRows"], 200, "the default");
    let faults = org.admin_faults(json!({"subqueryInlineRows": 2})).await;
    assert_eq!(faults["subqueryInlineRows"], 2);
    let expected = grants_by_user(&org).await;
    assert_eq!(expected.len(), 199, "all but the Automated Process user");

    let mut seen_users = Vec::new();
    let mut collected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut child_urls = Vec::new();
    let mut pages = 0;
    let mut page = query(&org, &format!("{GRANTS} ORDER BY Id")).await;
    loop {
        pages += 1;
        assert_eq!(page["totalSize"], 200);
        let mut counted = 0;
        for r in page["records"].as_array().unwrap() {
            let user = str_of(&r["Id"]);
            seen_users.push(user.clone());
            let child = &r["PermissionSetAssignments"];
            if child.is_null() {
                assert!(!expected.contains_key(&user), "{user} has grants");
                counted += 1;
                continue;
            }
            let inline = ids_of(child);
            assert_eq!(inline.len(), 2, "{child}");
            counted += 1 + inline.len();
            totals.insert(user.clone(), child["totalSize"].as_u64().unwrap());
            collected.entry(user.clone()).or_default().extend(inline);
            assert_eq!(child["done"], false);
            let url = str_of(&child["nextRecordsUrl"]);
            assert!(
                url.starts_with(&format!("/services/data/{V}/query/01g")),
                "{url}"
            );
            child_urls.push((user, url));
        }
        // Documented: child objects count toward the batch size (here 200).
        assert!(counted <= 200, "{counted}");
        if page["done"] == true {
            break;
        }
        assert!(
            counted > 200 - 3,
            "a page stops only when the next user would not fit: {counted}"
        );
        page = follow(&org, &str_of(&page["nextRecordsUrl"])).await;
    }
    assert!(pages >= 3, "600 records in pages of 200: {pages}");
    let distinct: BTreeSet<&String> = seen_users.iter().collect();
    assert_eq!(
        (seen_users.len(), distinct.len()),
        (200, 200),
        "each user once"
    );

    // Child locators still work after their query's later pages were read.
    for (user, url) in &child_urls {
        let mut next = Some(url.clone());
        while let Some(url) = next {
            let child_page = follow(&org, &url).await;
            assert_eq!(child_page["totalSize"], totals[user]);
            for r in child_page["records"].as_array().unwrap() {
                assert_eq!(r["attributes"]["type"], "PermissionSetAssignment");
                assert!(r["PermissionSet"]["Name"].is_string(), "{r}");
            }
            collected.get_mut(user).unwrap().extend(ids_of(&child_page));
            next = child_page["nextRecordsUrl"].as_str().map(str::to_owned);
            assert_eq!(child_page["done"], next.is_none());
        }
    }
    assert_eq!(
        collected, expected,
        "every child row exactly once, in order"
    );
    for (user, rows) in &collected {
        assert_eq!(totals[user], rows.len() as u64, "{user}");
    }

    // A child locator of no user of the query is not a locator.
    let (_, url) = &child_urls[0];
    let locator = url.rsplit('/').next().unwrap();
    let bogus = format!("/services/data/{V}/query/{}999999-2", &locator[..18]);
    let r = org
        .http
        .get(format!("{}{bogus}", org.base))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    let (status, code, _, _) = error_of(r).await;
    assert_eq!((status, code.as_str()), (404, "INVALID_QUERY_LOCATOR"));
}

/// Every user id in `ORDER BY Id` order.
async fn ordered_user_ids(org: &TestOrg) -> Vec<String> {
    let records = query_all(org, "SELECT Id FROM User ORDER BY Id").await;
    records.iter().map(|r| str_of(&r["Id"])).collect()
}

/// (record id, the reference column) of every record a query returns.
async fn pairs(org: &TestOrg, soql: &str, column: &str) -> Vec<(String, String)> {
    query_all(org, soql)
        .await
        .iter()
        .map(|r| (str_of(&r["Id"]), str_of(&r[column])))
        .collect()
}

#[tokio::test]
async fn id_ranges_select_exactly_the_rows_between_ordered_user_ids() {
    let org = org_with(EmulatorConfig {
        users: 120,
        access: AccessConfig {
            assignments_per_user: 2,
            memberships_per_user: 2,
            ..AccessConfig::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let ids = ordered_user_ids(&org).await;
    assert_eq!(ids.len(), 120);
    let all_members = pairs(
        &org,
        "SELECT Id, UserOrGroupId FROM GroupMember WHERE Group.Type = 'Regular'",
        "UserOrGroupId",
    )
    .await;
    assert_eq!(all_members.len(), 119 * 2);
    let between = |lo: usize, hi: usize, rows: &[(String, String)]| -> Vec<(String, String)> {
        let inside: BTreeSet<&String> = ids[lo..=hi].iter().collect();
        rows.iter()
            .filter(|(_, who)| inside.contains(who))
            .cloned()
            .collect()
    };

    // A 15-char lower bound and an 18-char upper bound in lower case.
    let (lo, hi) = (&ids[20], &ids[59]);
    let got = pairs(
        &org,
        &format!(
            "SELECT Id, UserOrGroupId, Group.DeveloperName FROM GroupMember WHERE Group.Type = 'Regular' AND UserOrGroupId >= '{}' AND UserOrGroupId <= '{}'",
            &lo[..15],
            hi.to_lowercase()
        ),
        "UserOrGroupId",
    )
    .await;
    assert_eq!(got, between(20, 59, &all_members));
    assert_eq!(got.len(), 80);

    // Half-open chunks, as PK chunking takes them, cover every membership exactly once.
    let mut swept = Vec::new();
    for start in (0..120).step_by(25) {
        let upper = ids
            .get(start + 25)
            .map(|b| format!(" AND UserOrGroupId < '{b}'"))
            .unwrap_or_default();
        swept.extend(
            pairs(
                &org,
                &format!(
                    "SELECT Id, UserOrGroupId FROM GroupMember WHERE Group.Type = 'Regular' AND UserOrGroupId >= '{}'{upper}",
                    ids[start]
                ),
                "UserOrGroupId",
            )
            .await,
        );
    }
    swept.sort();
    let mut all_sorted = all_members.clone();
    all_sorted.sort();
    assert_eq!(swept, all_sorted);

    // The same on AssigneeId, and on User.Id itself.
    let all_grants = pairs(
        &org,
        "SELECT Id, AssigneeId FROM PermissionSetAssignment WHERE PermissionSet.IsOwnedByProfile = false",
        "AssigneeId",
    )
    .await;
    let got = pairs(
        &org,
        &format!(
            "SELECT Id, AssigneeId FROM PermissionSetAssignment WHERE PermissionSet.IsOwnedByProfile = false AND AssigneeId > '{}' AND AssigneeId <= '{}'",
            ids[9], ids[30]
        ),
        "AssigneeId",
    )
    .await;
    assert_eq!(got, between(10, 30, &all_grants));
    let page = query(
        &org,
        &format!(
            "SELECT Id FROM User WHERE Id >= '{}' AND Id < '{}' ORDER BY Id",
            ids[40].to_uppercase(),
            &ids[50][..15]
        ),
    )
    .await;
    assert_eq!(ids_of(&page), ids[40..50].to_vec());
    let page = query(
        &org,
        &format!(
            "SELECT Id FROM User WHERE Id > '{}' AND Id < '{}'",
            ids[50], ids[40]
        ),
    )
    .await;
    assert_eq!(page["totalSize"], 0, "an inverted range is empty");
}

#[tokio::test]
async fn a_duplicate_membership_through_collections_returns_the_existing_one() {
    let org = org(20).await;
    let user = standard_users(&org, 1).await.remove(0);
    let group = id(&org, "Group", "Sales_Team");
    let member = |who: &str, group: &str| json!({"attributes": {"type": "GroupMember"}, "GroupId": group, "UserOrGroupId": who});
    let first = create(&org, false, vec![member(&user, &group)]).await;
    assert_eq!(first[0]["success"], true, "{first:?}");
    let existing = str_of(&first[0]["id"]);
    let memberships = format!(
        "SELECT Id FROM GroupMember WHERE UserOrGroupId = '{user}' AND GroupId = '{group}'"
    );

    // The same membership by other spellings of its ids, next to a failing record in an
    // all-or-none call: rolled back, and the membership that existed before stays.
    let results = create(
        &org,
        true,
        vec![
            member(&user[..15], &group.to_lowercase()),
            member(&user, "00G000000000000AAA"),
        ],
    )
    .await;
    assert_eq!(results[0]["success"], false);
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(results[1]["success"], false);
    assert_eq!(
        ids_of(&query(&org, &memberships).await),
        vec![existing.clone()]
    );

    let results = create(
        &org,
        false,
        vec![member(&user[..15], &group), member(&user, &group[..15])],
    )
    .await;
    for r in &results {
        assert_eq!(r["success"], true, "{r}");
        assert_eq!(
            r["id"],
            json!(existing),
            "the existing record, not an error"
        );
    }
    assert_eq!(ids_of(&query(&org, &memberships).await), vec![existing]);
}
