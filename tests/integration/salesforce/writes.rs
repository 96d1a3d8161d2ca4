//! Single-record writes, validation errors, collections, incremental polling, describe.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use idm_sync::salesforce::{ErrorKind, SalesforceError};
use serde_json::json;

use super::support::*;

/// A change that makes a valid create body invalid.
type Mutation = Box<dyn Fn(&mut serde_json::Map<String, serde_json::Value>)>;

#[tokio::test]
async fn create_get_update_deactivate() {
    let org = start_org(10, false).await;
    let handle = org.handle();
    let client = client(org.base_url());
    let username = unique("crud");
    let id = client.create(&new_user(&handle, &username)).await.unwrap();
    assert!(id.starts_with("005") && id.len() == 18);

    let got = client
        .get(&id, &["Id", "Username", "IsActive"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["Username"], json!(username));
    assert_eq!(got["IsActive"], json!(true));
    assert!(got.get("attributes").is_none());

    let mut change = serde_json::Map::new();
    change.insert("Title".into(), json!("Engineer"));
    client.update(&id, &change).await.unwrap();
    client.deactivate(&id).await.unwrap();
    let user = handle.user(&id).unwrap();
    assert_eq!(user["Title"], json!("Engineer"));
    assert_eq!(user["IsActive"], json!(false));

    assert!(
        client
            .get("005000000000000AAA", &[])
            .await
            .unwrap()
            .is_none()
    );
    let err = client.get("../limits", &[]).await.unwrap_err();
    assert!(matches!(err, SalesforceError::InvalidArgument(_)));
}

#[tokio::test]
async fn every_create_validation_error_is_typed_with_code_and_fields() {
    let org = start_org(10, false).await;
    let handle = org.handle();
    let client = client(org.base_url());
    let taken = unique("taken");
    client.create(&new_user(&handle, &taken)).await.unwrap();

    let cases: Vec<(&str, Mutation, &str, Vec<&str>)> = vec![
        (
            "missing LastName",
            Box::new(|r| {
                r.remove("LastName");
            }),
            "REQUIRED_FIELD_MISSING",
            vec!["LastName"],
        ),
        (
            "long Alias",
            Box::new(|r| {
                r.insert("Alias".into(), json!("waytoolong"));
            }),
            "STRING_TOO_LONG",
            vec!["Alias"],
        ),
        (
            "duplicate",
            Box::new(move |r| {
                r.insert("Username".into(), json!(taken.clone()));
            }),
            "DUPLICATE_USERNAME",
            vec!["Username"],
        ),
        (
            "unknown profile",
            Box::new(|r| {
                r.insert("ProfileId".into(), json!("00e000000000000AAA"));
            }),
            "INVALID_CROSS_REFERENCE_KEY",
            vec!["ProfileId"],
        ),
        (
            "bad email",
            Box::new(|r| {
                r.insert("Email".into(), json!("not-an-email"));
            }),
            "INVALID_EMAIL_ADDRESS",
            vec!["Email"],
        ),
        (
            "unknown field",
            Box::new(|r| {
                r.insert("Nope__c".into(), json!("x"));
            }),
            "INVALID_FIELD",
            vec![],
        ),
    ];
    for (name, mutate, code, fields) in cases {
        let mut record = new_user(&handle, &unique("v"));
        mutate(&mut record);
        let err = client.create(&record).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Rejected, "{name}: {err}");
        assert_eq!(err.error_code(), Some(code), "{name}: {err}");
        assert_eq!(err.api_errors()[0].fields, fields, "{name}");
        assert!(
            matches!(err, SalesforceError::Api { status: 400, .. }),
            "{name}: {err}"
        );
    }
    // Rejections are not retried: one create call each, plus the first success.
    assert_eq!(handle.stats().calls_of(CREATE), 7);
}

#[tokio::test]
async fn collections_report_each_record_and_chunk_by_200() {
    let org = start_org(10, false).await;
    let handle = org.handle();
    let client = client(org.base_url());
    let taken = unique("dup");
    let mut records = vec![new_user(&handle, &taken), new_user(&handle, &taken)];
    let mut missing = new_user(&handle, &unique("missing"));
    missing.remove("LastName");
    records.push(missing);
    records.extend((0..447).map(|i| new_user(&handle, &unique(&format!("bulk{i}")))));

    let results = client.create_many(&records).await;
    assert_eq!(results.len(), 450);
    let first_id = results[0].as_ref().unwrap().clone();
    let dup = results[1].as_ref().unwrap_err();
    assert_eq!(dup.error_code(), Some("DUPLICATE_USERNAME"));
    assert_eq!(dup.api_errors()[0].fields, vec!["Username"]);
    assert_eq!(dup.kind(), ErrorKind::Rejected);
    assert_eq!(
        results[2].as_ref().unwrap_err().error_code(),
        Some("REQUIRED_FIELD_MISSING")
    );
    assert!(results[3..].iter().all(|r| r.is_ok()));
    assert_eq!(
        handle.stats().calls_of(COLLECTIONS_POST),
        3,
        "450 records = 200 + 200 + 50"
    );

    let mut title = serde_json::Map::new();
    title.insert("Title".into(), json!("Bulk"));
    let mut bad = serde_json::Map::new();
    bad.insert("Alias".into(), json!("far too long"));
    let updates = vec![
        (first_id.clone(), title.clone()),
        ("not-an-id".to_owned(), title.clone()),
        (results[3].as_ref().unwrap().clone(), bad),
    ];
    let updated = client.update_many(&updates).await;
    assert_eq!(updated.len(), 3);
    assert_eq!(updated[0].as_ref().unwrap(), &first_id);
    assert!(matches!(
        updated[1],
        Err(SalesforceError::InvalidArgument(_))
    ));
    assert_eq!(
        updated[2].as_ref().unwrap_err().error_code(),
        Some("STRING_TOO_LONG")
    );
    assert_eq!(handle.user(&first_id).unwrap()["Title"], json!("Bulk"));
}

#[tokio::test]
async fn updated_ids_describe_and_limits() {
    let org = start_org(300, false).await;
    let handle = org.handle();
    let client = client(org.base_url());
    let (start, end) = (Utc::now() - Duration::days(29), Utc::now());
    let updated = client.updated(start, end).await.unwrap();
    let covered =
        DateTime::parse_from_str(&updated.latest_date_covered, "%Y-%m-%dT%H:%M:%S%.3f%z").unwrap();
    assert!(
        covered <= end && covered > end - Duration::minutes(2),
        "{updated:?}"
    );
    // The same window, computed from a full read of SystemModstamp.
    let pages = all_pages(&client, "SELECT Id, SystemModstamp FROM User", 2000)
        .await
        .unwrap();
    let expected: HashSet<String> = pages
        .iter()
        .flat_map(|p| &p.records)
        .filter(|r| {
            let stamp = DateTime::parse_from_str(
                r["SystemModstamp"].as_str().unwrap(),
                "%Y-%m-%dT%H:%M:%S%.3f%z",
            )
            .unwrap();
            stamp >= start && stamp < covered
        })
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(updated.ids.into_iter().collect::<HashSet<_>>(), expected);

    let describe = client.describe_user().await.unwrap();
    assert_eq!(describe["name"], json!("User"));
    assert_eq!(describe["deletable"], json!(false));

    let limits = client.limits().await.unwrap();
    let daily = limits.daily_api_requests.unwrap();
    assert_eq!(daily.max, handle.stats().daily_limit);
    assert_eq!(client.last_api_usage().unwrap().max, daily.max);
}
