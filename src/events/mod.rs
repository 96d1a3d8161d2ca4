//! Salesforce change events (Change Data Capture over the Pub/Sub API) applied to managed
//! users: the `events` role, also part of `all`. One subscriber per connector whose
//! `conf/changeevents-<connector>.json` enables it; the changed users go through the inbound
//! mapping exactly as liveSync's (recon runs over their ids), so situations, policies, scripts
//! and audit are the same.
//!
//! | file | responsibility |
//! |---|---|
//! | `plan.rs` | what a batch of events asks for: users to reconcile, echoes, overflow |
//! | `subscriber.rs` | one connector's lease, stream, batches, replay id, reconnects |

mod plan;
mod subscriber;

pub use plan::Plan;
pub use subscriber::{Subscriber, SubscriberError, SubscriberSettings};

use crate::config::Conf;
use crate::metrics::Metrics;
use crate::recon::ReconEngine;
use crate::repo::Pool;

/// A subscriber for each connector whose change events are enabled.
pub fn subscribers(
    conf: &Conf,
    engine: &ReconEngine,
    pool: &Pool,
    holder: &str,
    metrics: &Metrics,
    settings: &SubscriberSettings,
) -> Result<Vec<Subscriber>, SubscriberError> {
    conf.change_events
        .iter()
        .filter(|c| c.enabled)
        .map(|c| {
            Subscriber::new(
                c.clone(),
                engine.clone(),
                pool.clone(),
                holder.to_owned(),
                metrics.clone(),
                settings.clone(),
            )
        })
        .collect()
}
