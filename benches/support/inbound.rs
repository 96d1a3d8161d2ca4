//! The shipped inbound mapping's full reconciliation, for the benchmarks (included by each with
//! `#[path]`).

use std::time::Instant;

use idm_sync::recon::{ReconEngine, ReconRequest};
use serde_json::Value;

/// The shipped inbound mapping.
pub const INBOUND: &str = "systemSalesforceUser_managedUser";

/// A full reconciliation of the shipped inbound mapping, which must succeed: its summary and
/// its seconds.
pub async fn reconcile_inbound(engine: &ReconEngine) -> (Value, f64) {
    let t = Instant::now();
    let summary = engine
        .run(ReconRequest {
            mapping: INBOUND.into(),
            ..ReconRequest::default()
        })
        .await
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    (summary, secs)
}
