//! Prometheus metrics: a small hand-written registry (atomics; counters, gauges, one histogram
//! type, label sets), its text encoder, and the metrics idm-sync exports. One registry serves the
//! whole process ([`Metrics::process`]); tests give each application a registry of its own.
//!
//! | file | responsibility |
//! |---|---|
//! | `counter.rs` | counters and gauges |
//! | `histogram.rs` | fixed-bucket histograms and their bucket sets |
//! | `family.rs` | a metric family: name, help, labels, one series per label set |
//! | `registry.rs` | the families of one registry, in order |
//! | `encode.rs` | the text exposition format 0.0.4, escaping |
//! | `catalog.rs` | idm-sync's metrics and the calls that move them |
//! | `salesforce.rs` | the Salesforce client's observer, counting calls |
//! | `scrape.rs` | the figures read from Postgres at scrape time |

mod catalog;
pub mod counter;
pub mod encode;
pub mod family;
pub mod histogram;
pub mod registry;
mod salesforce;
pub mod scrape;

pub use catalog::Metrics;
pub use encode::{CONTENT_TYPE, TextEncoder};

/// One scrape's text: the registry's families, then the figures read from Postgres (when a
/// pool is given and answers).
pub async fn render(metrics: &Metrics, pool: Option<&crate::repo::Pool>) -> String {
    let mut out = TextEncoder::new();
    metrics.encode(&mut out);
    if let Some(pool) = pool {
        let figures = match scrape::read(pool).await {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "metrics: cannot read the outbox and failure figures");
                None
            }
        };
        scrape::encode(figures.as_ref(), &mut out);
    }
    out.finish()
}
