//! liveSync (incremental inbound sync): poll Salesforce's `sobjects/User/updated` from a token
//! stored in Postgres, reconcile just the changed users through the recon engine, then advance
//! the token.
//!
//! # Why it is safe
//!
//! - **The token moves only after success.** It is Salesforce's `latestDateCovered` of the
//!   poll, stored only once every recon run over the polled ids ended SUCCESS. A failed pass
//!   (Salesforce down, a run failed or was canceled) or a skipped one (a recon of the mapping
//!   was running) leaves it, so the next pass polls the same window again: nothing is lost,
//!   and reconciling a user twice is harmless (an unchanged user writes nothing).
//! - **The first pass only records the position** (IDM's rule): liveSync does not replay
//!   history; a full reconciliation is what brings an org in at first.
//! - **Salesforce lists changes 30 days back at most.** An older token cannot be served: the
//!   pass fails with an error telling the operator to run a full reconciliation. A full run
//!   that succeeded covers every change before its start, so a later pass resumes from there.
//! - **Recon runs, not a code path of its own.** The changed ids go to the engine as a
//!   `sourceQuery` (`_id eq "…" or …`, [`super::by_ids::MAX_IDS_PER_RUN`] per run, so the SOQL stays short)
//!   with `runTargetPhase: false`: situations, policies, the outbox and the no-echo snapshot
//!   are exactly those of a full reconciliation, and the engine's per-mapping lock keeps
//!   liveSync and recon from running at once across replicas.
//!
//! - **A run's state decides, not its per-object results.** A run that ended SUCCESS with
//!   some objects failed (an AMBIGUOUS correlation, a script error) advances the token, as a
//!   full run does: those failures are in `audit/recon` and in the pass's `statusSummary`, and
//!   holding the token for them would replay the same failures forever and block every later
//!   change. A run that ended FAILED or CANCELED (Salesforce unavailable, the mass-change
//!   guard) holds it.
//!
//! Granularity is one minute: Salesforce truncates `start`/`end` to the minute and never
//! covers the current one, so a change shows up in the first pass after its minute ended.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};

use super::by_ids::{IdsOutcome, IdsRuns};
use super::{ReconEngine, ReconError};
use crate::config::systems::Resource;
use crate::mapping::Mapping;
use crate::repo::RepoError;
use crate::repo::sync_tokens::{self, SyncToken};
use crate::salesforce::{SalesforceClient, SalesforceError};

/// How far back Salesforce's `updated` call reaches.
pub const MAX_TOKEN_AGE_DAYS: i64 = 30;

/// What one pass did.
#[derive(Debug, Clone, PartialEq)]
pub enum PassStatus {
    /// No token was stored: the current position was recorded, nothing processed.
    Initialized,
    /// The changes up to the new token were reconciled (possibly none).
    Synced,
    /// Nothing done and the token unchanged, for this reason (a recon of the mapping runs).
    Skipped(String),
}

/// The result of one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSyncPass {
    pub source: String,
    pub mapping: String,
    pub status: PassStatus,
    /// The stored token after the pass.
    pub token: SyncToken,
    /// Distinct changed users polled from Salesforce.
    pub changes: usize,
    /// The recon runs of this pass, in order.
    pub runs: Vec<String>,
    /// Objects the runs processed successfully / with a failure (their `statusSummary`).
    pub succeeded: u64,
    pub failed: u64,
}

impl LiveSyncPass {
    /// IDM's answer to `_action=liveSync` (`_rev`, `_id`, `connectorData`), plus what the pass
    /// did.
    pub fn to_json(&self) -> Value {
        let status = match &self.status {
            PassStatus::Initialized => "INITIALIZED",
            PassStatus::Synced => "SUCCESS",
            PassStatus::Skipped(_) => "SKIPPED",
        };
        let mut out = json!({
            "_rev": self.token.rev.to_string(),
            "_id": source_id(&self.source),
            "connectorData": {
                "nativeType": "string",
                "syncToken": self.token.token.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
            "mapping": self.mapping,
            "status": status,
            "changes": self.changes,
            "reconIds": self.runs,
            "statusSummary": {"SUCCESS": self.succeeded, "FAILURE": self.failed},
        });
        if let (PassStatus::Skipped(reason), Some(obj)) = (&self.status, out.as_object_mut()) {
            obj.insert("message".into(), json!(reason));
        }
        out
    }
}

/// IDM's `_id` of a source's sync token: `system/salesforce/User` → `SYSTEMSALESFORCEUSER`.
pub fn source_id(source: &str) -> String {
    source
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum LiveSyncError {
    #[error(
        "liveSync of {0} is not available: no mapping with enableSync has it as its source (idm-sync polls the Salesforce users of its inbound mapping only)"
    )]
    UnknownSource(String),
    #[error(
        "the liveSync token of {resource} ({token}) is older than the {MAX_TOKEN_AGE_DAYS} days Salesforce lists changes for, so the changes since then cannot be polled: run a full reconciliation (POST /openidm/recon?_action=recon&mapping={mapping}); once it succeeds, liveSync resumes from its start"
    )]
    TokenTooOld {
        resource: String,
        mapping: String,
        token: DateTime<Utc>,
    },
    #[error(
        "liveSync of {resource}: reconciliation {run} of the changed users ended {state}{reason}; the token stays at {token} so the next pass retries"
    )]
    RunFailed {
        resource: String,
        run: String,
        state: String,
        reason: String,
        token: DateTime<Utc>,
    },
    #[error("liveSync of {0}: polling Salesforce for changed users failed")]
    Poll(String, #[source] SalesforceError),
    #[error("liveSync: Salesforce answered an unreadable latestDateCovered {0:?}")]
    BadCoverage(String),
    #[error(transparent)]
    Recon(#[from] ReconError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// liveSync over a recon engine; cheap to clone.
#[derive(Clone)]
pub struct LiveSync {
    engine: ReconEngine,
}

impl LiveSync {
    pub fn new(engine: ReconEngine) -> LiveSync {
        LiveSync { engine }
    }

    /// The mapping liveSync of `source` feeds: the first with that source and `enableSync`
    /// (IDM: `enableSync: false` turns liveSync of a system→managed mapping off).
    fn mapping(&self, source: &str) -> Result<&Mapping, LiveSyncError> {
        self.engine
            .sync_config()
            .mappings
            .iter()
            .find(|m| m.source == source && m.enable_sync && !m.links_reversed())
            .ok_or_else(|| LiveSyncError::UnknownSource(source.to_owned()))
    }

    /// The connector of `source` (`system/<name>/User`).
    fn client(&self, source: &str) -> Result<&SalesforceClient, LiveSyncError> {
        match Resource::parse(source) {
            Some(Resource::System { name, .. }) => self.engine.connectors().get(name),
            _ => None,
        }
        .ok_or_else(|| LiveSyncError::UnknownSource(source.to_owned()))
    }

    /// One pass: see the module documentation.
    pub async fn run_once(&self, source: &str) -> Result<LiveSyncPass, LiveSyncError> {
        let mapping = self.mapping(source)?;
        let mapping_name = mapping.name.clone();
        let inner = &self.engine.inner;
        let pool = &inner.pool;
        let now = Utc::now();
        let now_minute = minute(now);
        let pass = |status, token, changes| LiveSyncPass {
            source: source.to_owned(),
            mapping: mapping_name.clone(),
            status,
            token,
            changes,
            runs: Vec::new(),
            succeeded: 0,
            failed: 0,
        };

        let Some(mut stored) = sync_tokens::get(pool, source).await? else {
            let token = sync_tokens::init(pool, source, now_minute).await?;
            tracing::info!(source, token = %token.token, "liveSync: first pass recorded the current position");
            return Ok(pass(PassStatus::Initialized, token, 0));
        };
        // A full reconciliation that succeeded brought in every change before its start.
        if let Some(started) = sync_tokens::last_full_recon_start(pool, &mapping_name).await? {
            let started = minute(started);
            if started > stored.token {
                if let Some(moved) = sync_tokens::advance(pool, source, started).await? {
                    stored = moved;
                }
            }
        }
        if stored.token < now - Duration::days(MAX_TOKEN_AGE_DAYS) {
            return Err(LiveSyncError::TokenTooOld {
                resource: source.to_owned(),
                mapping: mapping_name.clone(),
                token: stored.token,
            });
        }
        // Salesforce refuses start >= end after truncating both to the minute: a second pass
        // within the minute of the token has nothing to poll yet.
        if stored.token >= now_minute {
            return Ok(pass(PassStatus::Synced, stored, 0));
        }

        let polled = self
            .client(source)?
            .updated(stored.token, now)
            .await
            .map_err(|e| LiveSyncError::Poll(source.to_owned(), e))?;
        let covered = parse_covered(&polled.latest_date_covered)?;
        let mut ids = polled.ids;
        ids.sort();
        ids.dedup();
        let mut result = pass(PassStatus::Synced, stored, ids.len());

        let outcome = self
            .engine
            .reconcile_ids(&mapping_name, mapping.source_query.as_ref(), &ids, None)
            .await?;
        let counted = |result: &mut LiveSyncPass, done: IdsRuns| {
            result.runs = done.runs;
            result.succeeded = done.succeeded;
            result.failed = done.failed;
        };
        match outcome {
            IdsOutcome::Done(done) => counted(&mut result, done),
            IdsOutcome::Busy { mapping: m, done } => {
                counted(&mut result, done);
                result.status = PassStatus::Skipped(format!(
                    "a reconciliation of {m} is running; the token stays at {} and the next pass polls again",
                    stored.token
                ));
                return Ok(result);
            }
            IdsOutcome::Failed {
                run, state, reason, ..
            } => {
                return Err(LiveSyncError::RunFailed {
                    resource: source.to_owned(),
                    run,
                    state,
                    reason,
                    token: stored.token,
                });
            }
        }

        if let Some(advanced) = sync_tokens::advance(pool, source, covered).await? {
            result.token = advanced;
        }
        tracing::info!(
            source,
            changes = result.changes,
            token = %result.token.token,
            "liveSync pass done"
        );
        Ok(result)
    }
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::minutes(1)).unwrap_or(t)
}

/// Salesforce's dates: `2026-11-26T23:59:00.000+0000` (no colon in the offset), or RFC 3339.
fn parse_covered(text: &str) -> Result<DateTime<Utc>, LiveSyncError> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| LiveSyncError::BadCoverage(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_id_is_idm_s() {
        assert_eq!(source_id("system/salesforce/User"), "SYSTEMSALESFORCEUSER");
    }

    #[test]
    fn covered_dates_parse_in_both_forms() {
        let a = parse_covered("2026-11-26T23:59:00.000+0000").unwrap();
        let b = parse_covered("2026-11-26T23:59:00Z").unwrap();
        assert_eq!(a, b);
        assert!(parse_covered("yesterday").is_err());
    }
}
