//! Reconciling a set of source ids through the engine, as liveSync and change events do: runs
//! of [`MAX_IDS_PER_RUN`] ids each (a `sourceQuery` within the mapping's own filter, no target
//! phase), so situations, policies, audit and the outbox are those of a full reconciliation,
//! and the engine's per-mapping lock keeps them from running beside a full run.

use serde_json::Value;

use super::{ReconEngine, ReconError, ReconRequest};
use crate::repo::event_subscriptions::Position;

/// Ids per recon run: the ids become one `Id IN (…)` list, about 30 bytes an id once
/// percent-encoded in the query's URL, so 400 take some 12 kB, below the 16,384-byte URI
/// limit Salesforce documents, with room for the select list; and one page of the query.
pub const MAX_IDS_PER_RUN: usize = 400;

/// How the runs over a set of ids ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdsOutcome {
    /// Every run ended SUCCESS (objects that failed are in its audit and counts).
    Done(IdsRuns),
    /// A reconciliation of the mapping was running: the runs made so far are kept, the rest
    /// was not started.
    Busy { mapping: String, done: IdsRuns },
    /// A run ended FAILED or CANCELED.
    Failed {
        run: String,
        state: String,
        /// ` (why)`, or empty.
        reason: String,
        done: IdsRuns,
    },
}

/// The runs made and what they counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdsRuns {
    pub runs: Vec<String>,
    pub succeeded: u64,
    pub failed: u64,
}

impl ReconEngine {
    /// Reconciles `ids` (sorted and deduplicated by the caller or not) through `mapping`.
    /// `position` goes with the last run's writes (earlier runs' writes commit before it: a
    /// crash between them replays those runs, which then change nothing).
    pub async fn reconcile_ids(
        &self,
        mapping: &str,
        mapping_query: Option<&Value>,
        ids: &[String],
        position: Option<&Position>,
    ) -> Result<IdsOutcome, ReconError> {
        let mut done = IdsRuns::default();
        let runs = ids.len().div_ceil(MAX_IDS_PER_RUN);
        for (i, chunk) in ids.chunks(MAX_IDS_PER_RUN).enumerate() {
            let request = ReconRequest {
                mapping: mapping.to_owned(),
                source_query: Some(chunk_query(mapping_query, chunk)),
                run_target_phase: Some(false),
                reported_changes: true,
                position: position.filter(|_| i + 1 == runs).cloned(),
                ..ReconRequest::default()
            };
            let summary = match self.run(request).await {
                Ok(summary) => summary,
                Err(ReconError::AlreadyRunning(m)) => {
                    return Ok(IdsOutcome::Busy { mapping: m, done });
                }
                Err(e) => return Err(e),
            };
            let text = |pointer: &str| summary.pointer(pointer).and_then(Value::as_str);
            let count = |pointer: &str| summary.pointer(pointer).and_then(Value::as_u64);
            let run = text("/_id").unwrap_or_default().to_owned();
            done.runs.push(run.clone());
            done.succeeded += count("/statusSummary/SUCCESS").unwrap_or(0);
            done.failed += count("/statusSummary/FAILURE").unwrap_or(0);
            let state = text("/state").unwrap_or("UNKNOWN");
            if state != "SUCCESS" {
                let reason = text("/stageDescription")
                    .filter(|s| !s.is_empty())
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                return Ok(IdsOutcome::Failed {
                    run,
                    state: state.to_owned(),
                    reason,
                    done,
                });
            }
        }
        Ok(IdsOutcome::Done(done))
    }
}

/// The `sourceQuery` of one chunk: the ids, within the mapping's own `sourceQuery` filter
/// when it has one (its `_fields` kept), so a run never reconciles a user a full run would
/// leave out.
fn chunk_query(mapping_query: Option<&Value>, ids: &[String]) -> Value {
    let ids_filter = ids
        .iter()
        .map(|id| format!("_id eq {}", Value::String(id.clone())))
        .collect::<Vec<_>>()
        .join(" or ");
    let mut query = mapping_query
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let filter = match query.get("_queryFilter").and_then(Value::as_str) {
        Some(own) if own.trim() != "true" => format!("({own}) and ({ids_filter})"),
        _ => ids_filter,
    };
    query.insert("_queryFilter".into(), Value::String(filter));
    Value::Object(query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunk_query_ors_the_ids_within_the_mapping_filter() {
        let ids = vec!["005A".to_owned(), "005B".to_owned()];
        assert_eq!(
            chunk_query(None, &ids),
            json!({"_queryFilter": "_id eq \"005A\" or _id eq \"005B\""})
        );
        let own = json!({"_queryFilter": "IsActive eq true", "_fields": "Title"});
        assert_eq!(
            chunk_query(Some(&own), &ids),
            json!({"_queryFilter": "(IsActive eq true) and (_id eq \"005A\" or _id eq \"005B\")", "_fields": "Title"})
        );
    }
}
