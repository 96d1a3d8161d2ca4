//! query: SOQL over HTTP, paging with nextRecordsUrl and batchSize, errors, locators.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::support::{V, error_of, org};

async fn page(org: &super::support::TestOrg, url: &str, batch: Option<usize>) -> Value {
    let mut req = org
        .http
        .get(format!("{}{url}", org.base))
        .bearer_auth(&org.token);
    if let Some(b) = batch {
        req = req.header("Sforce-Query-Options", format!("batchSize={b}"));
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Follows nextRecordsUrl to the end; returns the page sizes and all ids.
async fn drain(
    org: &super::support::TestOrg,
    soql: &str,
    batch: Option<usize>,
) -> (Vec<usize>, Vec<String>, u64) {
    let mut url = format!("/services/data/{V}/query?q={}", soql.replace(' ', "+"));
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    let total;
    loop {
        let p = page(org, &url, batch).await;
        let this_total = p["totalSize"].as_u64().unwrap();
        let records = p["records"].as_array().unwrap();
        sizes.push(records.len());
        ids.extend(records.iter().map(|r| r["Id"].as_str().unwrap().to_owned()));
        if p["done"] == true {
            assert!(p.get("nextRecordsUrl").is_none());
            total = this_total;
            break;
        }
        url = p["nextRecordsUrl"].as_str().unwrap().to_owned();
    }
    (sizes, ids, total)
}

#[tokio::test]
async fn paging_5001_users_with_batch_sizes_2000_and_200() {
    let org = org(5001).await;
    let (sizes, ids, total) = drain(&org, "SELECT Id, Username FROM User", None).await;
    assert_eq!(total, 5001);
    assert_eq!(sizes, vec![2000, 2000, 1001]);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 5001);

    let (sizes, ids, total) = drain(&org, "SELECT Id FROM User", Some(200)).await;
    assert_eq!(total, 5001);
    assert_eq!(sizes.len(), 26);
    assert!(sizes[..25].iter().all(|&s| s == 200));
    assert_eq!(sizes[25], 1);
    assert_eq!(ids.len(), 5001);

    // Out-of-range batch sizes are brought into 200..=2000.
    let (sizes, _, _) = drain(&org, "SELECT Id FROM User", Some(50)).await;
    assert_eq!(sizes[0], 200);
    let (sizes, _, _) = drain(&org, "SELECT Id FROM User", Some(5000)).await;
    assert_eq!(sizes[0], 2000);

    // One API call per page.
    let stats = org.handle().stats();
    assert_eq!(stats.calls_of("GET /services/data/vXX.X/query"), 4);
    assert_eq!(
        stats.calls_of("GET /services/data/vXX.X/query/{locator}"),
        2 + 25 + 25 + 2
    );
}

#[tokio::test]
async fn records_have_attributes_then_fields_in_select_order() {
    let org = org(20).await;
    let p = page(&org, &format!("/services/data/{V}/query?q=select+email,+ID,+isactive+from+user+where+Email+LIKE+'autoproc%25'"), None).await;
    assert_eq!(p["totalSize"], 1);
    assert_eq!(p["done"], true);
    let rec = &p["records"][0];
    let keys: Vec<&String> = rec.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["attributes", "Email", "Id", "IsActive"]);
    let id = rec["Id"].as_str().unwrap();
    assert_eq!(
        rec["attributes"],
        json!({"type":"User","url":format!("/services/data/{V}/sobjects/User/{id}")})
    );
    let p = page(&org, &format!("/services/data/{V}/query?q=SELECT+COUNT()+FROM+User+WHERE+IsActive+=+true+OR+IsActive+=+false"), None).await;
    assert_eq!(p, json!({"totalSize":20,"done":true,"records":[]}));
}

#[tokio::test]
async fn soql_filters_over_http() {
    let org = org(200).await;
    let all: Value = page(&org, &format!("/services/data/{V}/query?q=SELECT+Id,LastName,SystemModstamp+FROM+User+ORDER+BY+LastName+ASC,+Id+DESC"), None).await;
    let records = all["records"].as_array().unwrap();
    assert_eq!(records.len(), 200);
    let names: Vec<String> = records
        .iter()
        .map(|r| r["LastName"].as_str().unwrap().to_lowercase())
        .collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]));
    let stamp = records[10]["SystemModstamp"].as_str().unwrap();
    let iso = format!("{}Z", &stamp[..19]);
    let q = format!(
        "SELECT Id FROM User WHERE SystemModstamp > {iso} AND (IsActive = true OR IsActive = false)"
    );
    let later: Value = org
        .get("query")
        .query(&[("q", q.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let q2 = format!("SELECT Id FROM User WHERE NOT SystemModstamp > {iso}");
    let rest: Value = org
        .get("query")
        .query(&[("q", q2.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        later["totalSize"].as_u64().unwrap() + rest["totalSize"].as_u64().unwrap(),
        200
    );
    let q3 =
        "SELECT Id FROM User WHERE LastName IN ('Smith', 'JONES') AND LastName != 'Brown' LIMIT 3";
    let some: Value = org
        .get("query")
        .query(&[("q", q3)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(some["totalSize"].as_u64().unwrap() <= 3);
}

#[tokio::test]
async fn soql_errors_over_http() {
    let org = org(5).await;
    let cases = [
        ("SELECT Id, Foo FROM User", "INVALID_FIELD"),
        ("SELECT Id FROM User WHERE", "MALFORMED_QUERY"),
        ("SELEKT Id FROM User", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact", "INVALID_TYPE"),
        (
            "SELECT Id FROM User WHERE IsActive = 'yes'",
            "INVALID_FIELD",
        ),
        (
            "SELECT Id FROM User WHERE a = 1 AND b = 2 OR c = 3",
            "INVALID_FIELD",
        ),
        (
            "SELECT Id FROM User WHERE IsActive = true AND IsActive = true OR IsActive = false",
            "MALFORMED_QUERY",
        ),
    ];
    for (q, code) in cases {
        let r = org.get("query").query(&[("q", q)]).send().await.unwrap();
        let (status, got, message, _) = error_of(r).await;
        assert_eq!((status, got.as_str()), (400, code), "{q}: {message}");
        assert!(message.contains("ERROR at Row:1:Column:"), "{message}");
    }
    let (status, code, message, _) = error_of(org.get("query").send().await.unwrap()).await;
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (400, "MALFORMED_QUERY", "A query string has to be specified")
    );
    let (status, code, _, _) = error_of(org.get("query/01gNOPE-2000").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "INVALID_QUERY_LOCATOR"));
}

#[tokio::test]
async fn cursor_is_a_snapshot_of_matching_ids() {
    let org = org(450).await;
    let first = page(
        &org,
        &format!("/services/data/{V}/query?q=SELECT+Id+FROM+User+WHERE+IsActive+=+true"),
        Some(200),
    )
    .await;
    let total = first["totalSize"].as_u64().unwrap();
    // Deactivate a user on a later page: the cursor still returns it (the match set was fixed).
    let next = first["nextRecordsUrl"].as_str().unwrap().to_owned();
    let second = page(&org, &next, Some(200)).await;
    let victim = second["records"][0]["Id"].as_str().unwrap().to_owned();
    assert_eq!(
        org.patch(
            &format!("sobjects/User/{victim}"),
            &json!({"IsActive":false})
        )
        .send()
        .await
        .unwrap()
        .status(),
        204
    );
    let again = page(&org, &next, Some(200)).await;
    assert_eq!(again["records"][0]["Id"], victim.as_str());
    assert_eq!(again["totalSize"].as_u64().unwrap(), total);
}
