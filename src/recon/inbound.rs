//! The inbound direction: a mapping from a Salesforce object type into managed objects. Its
//! phases are the source phase (Salesforce pages, `source_phase.rs`), the target phase
//! (managed objects nothing touched, `target_phase.rs`) and the held deletes (`apply.rs`).

use std::time::Instant;

use serde_json::{Value, json};

use super::audited::{Audited, Phase};
use super::in_step::{Loading, plain_confirmed_update};
use super::run_state::{Flow, Run, RunOutcome};
use super::seen::SeenTargets;
use super::summary::{Stage, Timed};
use super::{ReconError, ReconRequest, TARGET_RESOURCE, TARGET_TYPE, soql};
use crate::filter::Filter;
use crate::mapping::{Mapping, Situation};
use crate::repo::event_subscriptions::Position;
use crate::repo::{links, recon_runs};
use crate::salesforce::access_read::ReadState;

/// What an inbound run reads, worked out from the request before it starts.
pub(crate) struct Prepared {
    soql: soql::UserSoql,
    source_resource: String,
    target_filter: Filter,
    target_query: Value,
    run_target_phase: bool,
}

impl Prepared {
    pub fn parameters(&self) -> Value {
        json!({
            "sourceQuery": {"resourceName": self.source_resource, "soql": self.soql.text},
            "targetQuery": {"resourceName": TARGET_RESOURCE, "queryFilter": self.target_query},
            "runTargetPhase": self.run_target_phase,
        })
    }
}

/// An inbound run in progress: the lifecycle, what it reads, and what its pages have held
/// back or touched so far.
pub(crate) struct Inbound {
    pub run: Run,
    pub soql: soql::UserSoql,
    pub target_filter: Filter,
    pub run_target_phase: bool,
    /// Run correlation queries (false when the target set was empty at the start and
    /// `correlateEmptyTargetSet` is false, as in IDM).
    pub correlate: bool,
    /// Managed objects when the run started (the guard's denominator).
    pub existing_targets: u64,
    /// Sequence of held-back deletes (numbers may be skipped).
    pub pending_seq: i64,
    /// Held-back deletes and deactivations so far (the guard's numerator).
    pub held: u64,
    /// Objects created by this run at which to refresh the planner's statistics next.
    pub next_analyze: u64,
    /// The targets the source phase touched.
    pub seen: SeenTargets,
    /// The links in step, read beside the source phase (see `in_step.rs`).
    pub in_step: Option<Loading>,
    /// What reading the grants with the users has learned (role names, refused id ranges).
    pub read_state: ReadState,
    /// The subscription position still to store with the run's last write (`ReconRequest::position`).
    pub position: Option<Position>,
}

impl Inbound {
    /// Checks the request's queries against `mapping`.
    pub fn prepare(mapping: &Mapping, req: &ReconRequest) -> Result<Prepared, ReconError> {
        let source_query = req.source_query.as_ref().or(mapping.source_query.as_ref());
        let soql = soql::build(mapping, source_query, req.source_id.as_deref())
            .map_err(|e| ReconError::BadRequest(format!("sourceQuery: {e}")))?;
        let target_query = req.target_query.as_ref().or(mapping.target_query.as_ref());
        let target_filter = soql::query_filter(target_query)
            .map_err(|e| ReconError::BadRequest(format!("targetQuery: {e}")))?
            .unwrap_or(Filter::True);
        Ok(Prepared {
            soql,
            source_resource: mapping.source.clone(),
            target_filter,
            target_query: soql::filter_text(target_query),
            run_target_phase: req.runs_target_phase(mapping),
        })
    }

    pub fn new(run: Run, prepared: Prepared) -> Inbound {
        let seen = SeenTargets::new(run.inner.settings.seen_in_memory);
        let position = run.req.position.clone().filter(|_| !run.req.analyze);
        Inbound {
            position,
            run,
            soql: prepared.soql,
            target_filter: prepared.target_filter,
            run_target_phase: prepared.run_target_phase,
            correlate: false,
            existing_targets: 0,
            pending_seq: 0,
            held: 0,
            next_analyze: FIRST_ANALYZE,
            seen,
            in_step: None,
            read_state: ReadState::default(),
        }
    }

    pub(crate) async fn phases(&mut self) -> Result<RunOutcome, ReconError> {
        if self.run.enter(Stage::QueryEntries).await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        let t = Instant::now();
        let existing =
            recon_runs::count_targets(self.run.pool(), TARGET_TYPE, &self.target_filter).await?;
        self.run.stats.time(Timed::TargetQuery, t.elapsed());
        self.existing_targets = u64::try_from(existing).unwrap_or(0);
        self.run.stats.target_total = Some(self.existing_targets);
        let link_total = links::count(self.run.pool(), self.run.mapping().link_type()).await?;
        self.run.stats.links_total = Some(u64::try_from(link_total).unwrap_or(0));
        self.correlate = self.run.mapping().has_correlation()
            && (self.existing_targets > 0 || self.run.mapping().correlate_empty_target_set);
        if self.reads_in_step() {
            let mapping = self.run.mapping();
            self.in_step = Some(Loading::spawn(
                self.run.pool().clone(),
                mapping.link_type().to_owned(),
                TARGET_TYPE.to_owned(),
                &self.seen,
                usize::try_from(self.run.stats.links_total.unwrap_or(0)).unwrap_or(0),
            ));
        }

        if self.run.enter(Stage::ReconcilingSource).await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        let t = Instant::now();
        let flow = self.source_phase().await?;
        self.run.stats.time(Timed::SourcePhase, t.elapsed());
        if flow == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        if let Some(source_id) = self.run.req.source_id.clone()
            && self.run.stats.source_processed == 0
            && let Err(reason) = self.vanished_source(&source_id).await?
        {
            return Ok(RunOutcome::Failed(reason.to_string()));
        }
        if let Some(failed) = self.run.empty_source() {
            return Ok(failed);
        }

        if self.run_target_phase {
            if self.run.enter(Stage::ReconcilingTarget).await? == Flow::Cancel {
                return Ok(RunOutcome::Canceled);
            }
            let t = Instant::now();
            let flow = self.target_phase().await?;
            self.run.stats.time(Timed::TargetPhase, t.elapsed());
            if flow == Flow::Cancel {
                return Ok(RunOutcome::Canceled);
            }
        }

        if self.run.enter(Stage::ApplyingDeletes).await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        if let Some(failed) = self.run.mass_change(self.held, self.existing_targets) {
            return Ok(failed);
        }
        if self.apply_pending_deletes().await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        // No write took the position with it (nothing changed, or the last write was not the
        // place): stored on its own, nothing left uncommitted that it would vouch for.
        if let Some(position) = self.position.take() {
            self.position_stored(position.store(self.run.pool()).await?);
        }
        Ok(RunOutcome::Success)
    }
}

impl Inbound {
    /// Notes that the position went with a write (or that its fence refused it: the lease
    /// was lost, and the subscriber learns it when it renews).
    pub(crate) fn position_stored(&mut self, stored: bool) {
        if !stored {
            tracing::info!(recon_id = %self.run.id, "the change events position was not stored: the subscription's lease is no longer this subscriber's");
        }
        self.position = None;
    }

    /// Whether this run reads the links in step up front: the unchanged fast path applies,
    /// there are managed objects, no more than the touched targets held in memory (those read
    /// up front are remembered by key only), it is a whole run, and the audit does not write
    /// unchanged entries (known by key only, they have no target id to write).
    fn reads_in_step(&self) -> bool {
        let mapping = self.run.mapping();
        let Some(decision) = plain_confirmed_update(mapping) else {
            return false;
        };
        let unchanged = Audited {
            phase: Phase::Source,
            source_id: None,
            target_id: None,
            situation: Some(Situation::Confirmed),
            action: Some(decision.action),
            status: "SUCCESS",
            unchanged: true,
        };
        self.run.req.source_id.is_none()
            && (1..=self.run.inner.settings.seen_in_memory as u64).contains(&self.existing_targets)
            && !self.run.admits(&unchanged)
    }
}

/// Creates after which a run first refreshes the statistics (about one page); then each time
/// they double.
const FIRST_ANALYZE: u64 = 1_000;

impl Inbound {
    /// A run filling an empty repository makes the tables it reads many times larger than
    /// their statistics say; with autovacuum slow or off, the planner then picks scans for
    /// look-ups a page at a time. Refreshing them as the run doubles the data costs a few
    /// sampled ANALYZEs per run and keeps every page's queries on their indexes.
    pub(crate) async fn refresh_statistics(&mut self) -> Result<(), ReconError> {
        if self.run.req.analyze || self.run.stats.created < self.next_analyze {
            return Ok(());
        }
        self.next_analyze = self.run.stats.created.saturating_mul(2);
        // Only an optimisation: a role not allowed to ANALYZE runs on with older statistics.
        if let Err(e) = recon_runs::refresh_statistics(self.run.pool()).await {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot refresh the planner's statistics");
        }
        Ok(())
    }
}
