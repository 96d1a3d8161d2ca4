//! A run's state, whatever its direction: what was asked, the mapping, counters and stage,
//! the checkpoint (progress, heartbeat, cancel) and the `result` script at its end.

use std::sync::Arc;

use serde_json::Value;

use super::summary::{Stage, Stats};
use super::{Inner, ReconError, ReconRequest};
use crate::mapping::Mapping;
use crate::repo::{Pool, recon_runs};
use crate::salesforce::SalesforceClient;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Success,
    Canceled,
    Failed(String),
}

/// `reconById` of an object that is gone and that nothing is linked to: the run fails with
/// this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource}/{id} not found, and no {other_side} is linked to it")]
pub(crate) struct NothingLinked {
    pub resource: String,
    pub id: String,
    pub other_side: &'static str,
}

/// Whether to go on after a page boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Go,
    Cancel,
}

/// A run's lifecycle state, whatever its direction: what was asked, the mapping, the
/// counters and the stage. The direction's phases own it ([`Phases`]).
pub(crate) struct Run {
    pub inner: Arc<Inner>,
    /// The connector of the mapping's system side.
    pub client: SalesforceClient,
    pub id: String,
    pub req: ReconRequest,
    pub mapping_index: usize,
    pub stats: Stats,
    pub stage: Stage,
}

impl Run {
    // `mapping_index` was found in this very configuration when the run started, and the
    // engine's configuration never changes: the index cannot miss.
    #[allow(clippy::indexing_slicing)]
    pub fn mapping(&self) -> &Mapping {
        &self.inner.sync.mappings[self.mapping_index]
    }

    /// The mapping, borrowed from a clone of the engine (so `self` stays free to mutate).
    #[allow(clippy::indexing_slicing)] // as in `mapping`
    pub fn mapping_of<'a>(&self, inner: &'a Inner) -> &'a Mapping {
        &inner.sync.mappings[self.mapping_index]
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Records progress and a heartbeat; reads the cancel flag.
    pub async fn checkpoint(&mut self) -> Result<Flow, ReconError> {
        let cancel = recon_runs::progress(
            self.pool(),
            &self.id,
            self.stage.pair(),
            &self.stats.to_json(),
        )
        .await?;
        Ok(if cancel { Flow::Cancel } else { Flow::Go })
    }

    /// The failure of a whole run whose source set was empty, unless the mapping allows it.
    pub fn empty_source(&self) -> Option<RunOutcome> {
        (self.stats.source_processed == 0
            && self.req.source_id.is_none()
            && !self.mapping().allow_empty_source_set)
            .then(|| {
                RunOutcome::Failed(
                    "Cannot reconcile from an empty data source, unless allowEmptySourceSet is true."
                        .into(),
                )
            })
    }

    /// The failure when `held` deletes of `existing` targets exceed the guard's share (not for
    /// one object, analyze or `allowMassChange`; nor for a single one among the users
    /// Salesforce reported changed, whatever the population).
    pub fn mass_change(&self, held: u64, existing: u64) -> Option<RunOutcome> {
        let allowed = self.req.allow_mass_change
            || self.req.source_id.is_some()
            || self.req.analyze
            || (self.req.reported_changes && held <= 1);
        super::guard::check(
            held,
            existing,
            self.inner.settings.max_delete_share,
            allowed,
        )
        .err()
        .map(|reason| RunOutcome::Failed(reason.to_string()))
    }

    /// Enters `stage` and checkpoints.
    pub async fn enter(&mut self, stage: Stage) -> Result<Flow, ReconError> {
        self.stage = stage;
        self.checkpoint().await
    }
}

impl Run {
    /// The mapping's `result` script, once the run has ended (in any state): `source` and
    /// `target` are the phases' progress, `global` the summary with `reconId`, `mapping` and
    /// `state`. What it returns, or why it failed, is kept in the summary (`resultScript`).
    pub fn run_result_script(&mut self, state: &str) {
        if self.mapping().hooks.result.is_none() {
            return;
        }
        let mut global = self.stats.to_json();
        global.insert("reconId".into(), Value::from(self.id.clone()));
        global.insert("mapping".into(), Value::from(self.req.mapping.clone()));
        global.insert("state".into(), Value::from(state));
        let progress = |side: &str| {
            global
                .get("progress")
                .and_then(|p| p.get(side))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let (source, target) = (progress("source"), progress("target"));
        let outcome = match self
            .mapping()
            .run_result(&source, &target, &Value::Object(global))
        {
            Ok(value) => serde_json::json!({ "value": value }),
            Err(e) => {
                tracing::warn!(recon_id = %self.id, error = %e, "the mapping's result script failed");
                serde_json::json!({ "error": e.to_string() })
            }
        };
        self.stats.result_script = Some(outcome);
    }
}
