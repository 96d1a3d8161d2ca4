//! Prometheus metrics on `prometheus-client`: the metrics idm-sync exports, the process metrics,
//! and the OpenMetrics text of one scrape. One registry serves the whole process
//! ([`Metrics::process`]); tests give each application a registry of its own.
//!
//! | file | responsibility |
//! |---|---|
//! | `catalog.rs` | idm-sync's metrics and the calls that move them |
//! | `labels.rs` | their label sets (closed value sets only) |
//! | `process.rs` | `process_*` metrics read from `/proc/self` at scrape time |
//! | `salesforce.rs` | the Salesforce client's observer, counting calls |
//! | `scrape.rs` | the figures read from Postgres at scrape time |

mod catalog;
mod labels;
mod process;
mod salesforce;
pub mod scrape;

use prometheus_client::encoding::text::{encode_eof, encode_registry};

pub use catalog::Metrics;
pub use labels::HttpLabels;

/// The `Content-Type` of a scrape: the OpenMetrics text format, which Prometheus negotiates.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One scrape's text: the registry's families, then the figures read from Postgres (when a
/// pool is given and answers).
pub async fn render(metrics: &Metrics, pool: Option<&crate::repo::Pool>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the encoders' fmt::Error has no other source.
    let _ = encode_registry(&mut out, metrics.registry());
    if let Some(pool) = pool {
        let figures = scrape::read(pool)
            .await
            .inspect_err(|e| tracing::warn!(error = %crate::telemetry::error_chain(e), "metrics: cannot read the outbox and failure figures"))
            .ok();
        let _ = encode_registry(&mut out, &scrape::registry(figures.as_ref()));
    }
    let _ = encode_eof(&mut out);
    out
}
