//! Transient failures within and beyond the retry bound, rate limits, timeouts.

use std::time::Duration;

use idm_sync::salesforce::{ErrorKind, SalesforceClient, SalesforceError, TokenStore};
use sf_emulator::FaultUpdate;

use super::support::*;

#[tokio::test]
async fn a_503_storm_shorter_than_the_retry_bound_is_ridden_out() {
    let org = start_org(3000, false).await;
    let handle = org.handle();
    let client = client(org.base_url());
    client.limits().await.unwrap(); // token first: the storm hits data calls only
    handle.update_faults(&FaultUpdate {
        rate_503: Some(1.0),
        ..Default::default()
    });
    // Calm the storm once two query calls have failed.
    let watcher = {
        let handle = handle.clone();
        tokio::spawn(async move {
            while handle.stats().calls_of(QUERY) < 2 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            handle.update_faults(&FaultUpdate {
                rate_503: Some(0.0),
                ..Default::default()
            });
        })
    };
    let pages = all_pages(&client, "SELECT Id FROM User", 2000)
        .await
        .unwrap();
    watcher.await.unwrap();
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 3000);
    let stats = handle.stats();
    assert!(
        stats.calls_of(QUERY) >= 3,
        "two 503s then success: {stats:?}"
    );
    assert!(stats.calls_of(QUERY) <= 4);
}

#[tokio::test]
async fn a_503_storm_beyond_the_bound_gives_a_typed_transient_error() {
    let org = start_org(10, false).await;
    let handle = org.handle();
    let client = client(org.base_url());
    handle.update_faults(&FaultUpdate {
        rate_503: Some(1.0),
        ..Default::default()
    });
    let err = client.limits().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(
        matches!(&err, SalesforceError::RetriesExhausted { attempts: 4, .. }),
        "{err}"
    );
    assert_eq!(err.error_code(), Some("SERVER_UNAVAILABLE"));
    assert_eq!(
        handle.stats().calls_of(LIMITS),
        4,
        "max_attempts calls, no more"
    );
}

#[tokio::test]
async fn row_locks_are_retried_even_for_creates() {
    let org = start_org(10, false).await;
    let handle = org.handle();
    let client = client(org.base_url());
    handle.update_faults(&FaultUpdate {
        rate_lock_row: Some(1.0),
        ..Default::default()
    });
    let err = client
        .create(&new_user(&handle, &unique("locked")))
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), Some("UNABLE_TO_LOCK_ROW"));
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(handle.stats().calls_of(CREATE), 4);
    // In a collection the lock is one record's transient failure, reported to the caller.
    let results = client
        .create_many(&[new_user(&handle, &unique("locked"))])
        .await;
    let e = results[0].as_ref().unwrap_err();
    assert_eq!(e.error_code(), Some("UNABLE_TO_LOCK_ROW"));
    assert!(e.is_transient(false));
}

#[tokio::test]
async fn request_limit_exceeded_is_its_own_kind_after_one_call() {
    let org = start_org(10, false).await;
    let handle = org.handle();
    let client = client(org.base_url());
    client.limits().await.unwrap();
    let used = handle.stats().api_usage;
    handle.update_faults(&FaultUpdate {
        daily_limit: Some(used),
        ..Default::default()
    });
    handle.reset_stats();
    let err = client.get("005000000000000AAA", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert!(
        matches!(&err, SalesforceError::RequestLimitExceeded { usage: Some(u), .. } if u.used == used && u.max == used)
    );
    assert_eq!(handle.stats().data_calls(), 1, "not retried");
    // Whole collection calls stop at the first limit error.
    let results = client
        .create_many(&vec![new_user(&handle, &unique("x")); 450])
        .await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(e) if e.kind() == ErrorKind::RateLimited))
    );
    assert_eq!(handle.stats().calls_of(COLLECTIONS_POST), 1);
}

#[tokio::test]
async fn timeouts_are_retried_for_reads_but_not_for_creates() {
    let org = start_org(10, false).await;
    let handle = org.handle();
    let mut cfg = config(org.base_url());
    cfg.request_timeout = Duration::from_millis(300);
    let client = SalesforceClient::new(cfg, TokenStore::in_memory()).unwrap();
    client.limits().await.unwrap();
    handle.update_faults(&FaultUpdate {
        latency_ms: Some(1000),
        ..Default::default()
    });
    handle.reset_stats();
    let err = client.limits().await.unwrap_err();
    assert!(
        matches!(&err, SalesforceError::RetriesExhausted { attempts: 4, last } if matches!(**last, SalesforceError::Timeout(_))),
        "{err}"
    );
    let err = client
        .create(&new_user(&handle, &unique("slow")))
        .await
        .unwrap_err();
    assert!(matches!(err, SalesforceError::Timeout(_)), "{err}");
    let stats = handle.stats();
    assert_eq!(stats.calls_of(LIMITS), 4);
    assert_eq!(
        stats.calls_of(CREATE),
        1,
        "a create that may have happened is not repeated"
    );
}

#[tokio::test]
async fn an_unreachable_org_is_a_connect_error_after_the_retries() {
    // A port nobody listens on: bind, note it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = client(&format!("http://127.0.0.1:{port}"));
    let err = client.test().await.unwrap_err();
    assert!(
        matches!(&err, SalesforceError::RetriesExhausted { last, .. } if matches!(**last, SalesforceError::Connect(_))),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Transient);
}
