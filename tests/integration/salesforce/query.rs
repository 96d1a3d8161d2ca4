//! The query stream: paging, expiry mid-stream, SOQL errors.

use std::collections::HashSet;

use futures_util::StreamExt;
use idm_sync::salesforce::ErrorKind;

use super::support::*;

async fn page_through(batch: u32, expected_calls: u64) {
    let org = start_org(5001, false).await;
    let handle = org.handle();
    let client = client(org.base_url());
    let pages = all_pages(&client, "SELECT Id, Username, IsActive FROM User", batch)
        .await
        .unwrap();
    let ids: HashSet<String> = pages
        .iter()
        .flat_map(|p| {
            p.records
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(ids.len(), handle.user_count());
    assert_eq!(ids.len(), 5001);
    assert!(pages.iter().all(|p| p.total_size == 5001));
    assert!(pages.last().unwrap().done);
    assert!(pages[0].records[0].get("attributes").is_none());
    let stats = handle.stats();
    assert_eq!(stats.calls_of(QUERY), 1);
    assert_eq!(
        stats.calls_of(QUERY) + stats.calls_of(QUERY_MORE),
        expected_calls
    );
    assert_eq!(pages.len() as u64, expected_calls);
    assert_eq!(stats.token_calls, 1);
}

#[tokio::test]
async fn pages_5001_users_in_batches_of_2000() {
    page_through(2000, 3).await;
}

#[tokio::test]
async fn pages_5001_users_in_batches_of_200() {
    page_through(200, 26).await;
}

#[tokio::test]
async fn an_expired_session_mid_query_is_refreshed_and_the_stream_completes() {
    let org = start_org(1000, false).await;
    let client = client(org.base_url());
    let mut stream = Box::pin(client.query_with_batch_size("SELECT Id FROM User", 200));
    let first = stream.next().await.unwrap().unwrap();
    let mut seen = first.records.len();
    org.handle().expire_access_tokens();
    while let Some(page) = stream.next().await {
        seen += page.unwrap().records.len();
    }
    assert_eq!(seen, 1000);
    let stats = org.handle().stats();
    assert_eq!(stats.token_calls, 2, "the initial token and one refresh");
    // Five pages, plus the one call that met the expired session.
    assert_eq!(stats.calls_of(QUERY) + stats.calls_of(QUERY_MORE), 6);
}

#[tokio::test]
async fn soql_errors_are_typed_and_end_the_stream() {
    let org = start_org(10, false).await;
    let client = client(org.base_url());
    for (soql, code) in [
        ("SELECT Id FROM User WHERE", "MALFORMED_QUERY"),
        ("SELECT Id, NoSuchField__c FROM User", "INVALID_FIELD"),
    ] {
        let mut stream = Box::pin(client.query(soql));
        let err = stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.error_code(), Some(code), "{soql}: {err}");
        assert_eq!(err.kind(), ErrorKind::Rejected);
        assert!(!err.api_errors()[0].message.is_empty());
        assert!(
            stream.next().await.is_none(),
            "the stream ends after an error"
        );
    }
    // Permanent errors are not retried.
    assert_eq!(org.handle().stats().calls_of(QUERY), 2);
}

#[tokio::test]
async fn where_clauses_reach_salesforce() {
    let org = start_org(300, false).await;
    let client = client(org.base_url());
    let pages = all_pages(
        &client,
        "SELECT Id, IsActive FROM User WHERE IsActive = false",
        2000,
    )
    .await
    .unwrap();
    let records: Vec<_> = pages.iter().flat_map(|p| &p.records).collect();
    assert!(!records.is_empty() && records.len() < 300);
    assert!(records.iter().all(|r| r["IsActive"] == false));
}
