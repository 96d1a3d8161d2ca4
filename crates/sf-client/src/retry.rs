//! Retries of transient failures with jittered exponential backoff (backon), bounded in attempts
//! and in total delay. What counts as transient is [`SalesforceError::is_transient`].

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use backon::{ExponentialBuilder, Retryable};

use crate::config::RetryConfig;
use crate::errors::SalesforceError;

pub(crate) fn backoff(cfg: &RetryConfig) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(cfg.min_delay)
        .with_max_delay(cfg.max_delay)
        // backon counts retries, not attempts.
        .with_max_times(cfg.max_attempts.saturating_sub(1) as usize)
        .with_total_delay(Some(cfg.max_total_delay))
}

/// Runs `op` until it succeeds, fails permanently, or the retry bound is reached. A transient
/// failure that outlasted the bound comes back as [`SalesforceError::RetriesExhausted`].
pub(crate) async fn with_retry<T, F, Fut>(
    cfg: &RetryConfig,
    idempotent: bool,
    what: &str,
    mut op: F,
) -> Result<T, SalesforceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SalesforceError>>,
{
    // Atomic rather than Cell: the future must stay Send (query streams cross tasks). The
    // closures are `move` over plain references so no higher-ranked borrow ends up in the future.
    let counter = AtomicU32::new(0);
    let attempts = &counter;
    let counted = move || {
        attempts.fetch_add(1, Ordering::Relaxed);
        op()
    };
    let result = counted
        .retry(backoff(cfg))
        .sleep(tokio::time::sleep)
        .when(move |e: &SalesforceError| e.is_transient(idempotent))
        .notify(move |e: &SalesforceError, delay| {
            tracing::warn!(call = what, attempt = attempts.load(Ordering::Relaxed), ?delay, error = %e, "transient Salesforce failure, retrying");
        })
        .await;
    result.map_err(|e| {
        let attempts = attempts.load(Ordering::Relaxed);
        if e.is_transient(idempotent) && attempts > 1 {
            SalesforceError::RetriesExhausted {
                attempts,
                last: Box::new(e),
            }
        } else {
            e
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    fn fast(max_attempts: u32) -> RetryConfig {
        RetryConfig {
            max_attempts,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_total_delay: Duration::from_secs(5),
        }
    }

    fn unavailable() -> SalesforceError {
        SalesforceError::Api {
            status: 503,
            errors: vec![],
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_up_to_the_bound() {
        let calls = Cell::new(0);
        let r: Result<(), _> = with_retry(&fast(4), true, "t", || {
            calls.set(calls.get() + 1);
            async { Err(unavailable()) }
        })
        .await;
        assert_eq!(calls.get(), 4);
        assert!(matches!(
            r,
            Err(SalesforceError::RetriesExhausted { attempts: 4, .. })
        ));
    }

    #[tokio::test]
    async fn succeeds_within_the_bound_and_never_retries_permanent_errors() {
        let calls = Cell::new(0);
        let r = with_retry(&fast(4), true, "t", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 3 { Err(unavailable()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(r.unwrap(), 3);

        let calls = Cell::new(0);
        let r: Result<(), _> = with_retry(&fast(4), true, "t", || {
            calls.set(calls.get() + 1);
            async { Err(SalesforceError::NotAuthorized) }
        })
        .await;
        assert_eq!(calls.get(), 1);
        assert!(matches!(r, Err(SalesforceError::NotAuthorized)));
    }

    #[tokio::test]
    async fn ambiguous_failures_are_not_repeated_for_non_idempotent_calls() {
        let calls = Cell::new(0);
        let r: Result<(), _> = with_retry(&fast(4), false, "create", || {
            calls.set(calls.get() + 1);
            async { Err(SalesforceError::Timeout("timed out".into())) }
        })
        .await;
        assert_eq!(calls.get(), 1);
        assert!(matches!(r, Err(SalesforceError::Timeout(_))));
    }
}
