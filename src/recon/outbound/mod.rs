//! The outbound direction: a mapping from managed users to a Salesforce object type, run as
//! IDM runs it, in three passes over bounded pages:
//!
//! 1. **linked** (`linked.rs`): the Salesforce users of the target query, one SOQL stream of
//!    the mapped fields (⌈N/2000⌉ calls, and the grants it sets, read as inbound recon reads
//!    them: `user_pages.rs`); each page's links and linked managed users in two
//!    look-ups. A linked user whose mapped values differ from what Salesforce holds (drift
//!    made in Salesforce, or a change implicit sync never pushed) is queued; one in step is
//!    not. A link whose managed user is gone is SOURCE_MISSING.
//! 2. **unseen** (`unseen.rs`): the managed users pass 1 did not meet, by keyset: linked ones
//!    whose Salesforce user was not in the stream are read back by id (200 per call), the
//!    unlinked ones correlated in batches (ABSENT, FOUND, AMBIGUOUS…).
//! 3. **unassigned** (`unassigned.rs`, the target phase): Salesforce users nothing links to
//!    and no correlation claimed (UNASSIGNED, TARGET_IGNORED).
//!
//! Recon writes no Salesforce user itself: a user that needs a write gets a `sync` row in the
//! outbox (`write.rs`), and the outbound worker applies it as it applies any change, reading
//! the current managed user. So a user never has two writers, recon and implicit sync converge
//! on the latest revision whatever the interleaving, and a failed write becomes the same
//! retryable sync failure. Deactivations (DELETE) are held for the mass-change guard first.

mod linked;
mod unassigned;
mod unseen;
mod write;

use std::collections::HashSet;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::run_state::{Flow, Run, RunOutcome};
use super::seen::SeenTargets;
use super::summary::{Stage, Timed};
use super::{ReconError, ReconRequest, soql};
use crate::filter::Filter;
use crate::mapping::Mapping;
use crate::repo::links;
use crate::repo::recon_runs::{self, Unlinked};
use crate::salesforce::access::{USER_ROLE, grant_names, is_access_attribute};
use crate::salesforce::access_read::{AccessRead, ReadState};

pub(crate) use write::{Entry, Held, Via, Work};

/// What an outbound run reads, worked out from the request before it starts.
pub(crate) struct Prepared {
    soql: soql::UserSoql,
    target_resource: String,
    source_type: String,
    source_filter: Filter,
    source_query: Value,
    run_target_phase: bool,
}

impl Prepared {
    pub fn parameters(&self) -> Value {
        json!({
            "sourceQuery": {
                "resourceName": format!("managed/{}", self.source_type),
                "queryFilter": self.source_query,
            },
            "targetQuery": {"resourceName": self.target_resource, "soql": self.soql.text},
            "runTargetPhase": self.run_target_phase,
        })
    }
}

/// An outbound run in progress.
pub(crate) struct Outbound {
    pub run: Run,
    soql: soql::UserSoql,
    source_type: String,
    source_filter: Filter,
    run_target_phase: bool,
    /// Run correlation queries (false when Salesforce held no user at the start and
    /// `correlateEmptyTargetSet` is false, as in IDM).
    correlate: bool,
    /// Salesforce users of the target query (the guard's denominator).
    existing_targets: u64,
    /// Managed users pass 1 met.
    seen: SeenTargets,
    /// Salesforce users nothing links to, and whether each qualifies (`validTarget`): in
    /// memory up to `ReconSettings::unlinked_in_memory`, then in `recon_unlinked`.
    unlinked: Vec<Unlinked>,
    unlinked_spilled: bool,
    /// Salesforce users a correlation in pass 2 matched: not UNASSIGNED.
    claimed: HashSet<String>,
    /// Deactivations held for the guard.
    held: Vec<Held>,
    /// What reading the grants with the users has learned (role names, refused id ranges).
    read_state: ReadState,
}

impl Outbound {
    /// Checks the request's queries against `mapping`.
    pub fn prepare(mapping: &Mapping, req: &ReconRequest) -> Result<Prepared, ReconError> {
        let source_type = mapping
            .source
            .strip_prefix("managed/")
            .unwrap_or(&mapping.source)
            .to_owned();
        let source_query = req.source_query.as_ref().or(mapping.source_query.as_ref());
        let source_filter = soql::query_filter(source_query)
            .map_err(|e| ReconError::BadRequest(format!("sourceQuery: {e}")))?
            .unwrap_or(Filter::True);
        let target_query = req.target_query.as_ref().or(mapping.target_query.as_ref());
        let soql = target_soql(mapping, target_query)
            .map_err(|e| ReconError::BadRequest(format!("targetQuery: {e}")))?;
        Ok(Prepared {
            soql,
            target_resource: mapping.target.clone(),
            source_type,
            source_filter,
            source_query: soql::filter_text(source_query),
            run_target_phase: req.runs_target_phase(mapping),
        })
    }

    pub fn new(run: Run, prepared: Prepared) -> Outbound {
        let seen = SeenTargets::new(run.inner.settings.seen_in_memory);
        Outbound {
            run,
            soql: prepared.soql,
            source_type: prepared.source_type,
            source_filter: prepared.source_filter,
            run_target_phase: prepared.run_target_phase,
            correlate: false,
            existing_targets: 0,
            seen,
            unlinked: Vec::new(),
            unlinked_spilled: false,
            claimed: HashSet::new(),
            held: Vec::new(),
            read_state: ReadState::default(),
        }
    }

    pub(crate) async fn phases(&mut self) -> Result<RunOutcome, ReconError> {
        if self.run.enter(Stage::QueryEntries).await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        let t = Instant::now();
        let sources =
            recon_runs::count_targets(self.run.pool(), &self.source_type, &self.source_filter)
                .await?;
        self.run.stats.time(Timed::SourceQuery, t.elapsed());
        self.run.stats.source_total = Some(u64::try_from(sources).unwrap_or(0));
        let link_total = links::count(self.run.pool(), self.run.mapping().link_type()).await?;
        self.run.stats.links_total = Some(u64::try_from(link_total).unwrap_or(0));

        if self.run.enter(Stage::ReconcilingSource).await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        let t = Instant::now();
        if let Some(id) = self.run.req.source_id.clone() {
            if let Err(reason) = self.one_user(&id).await? {
                return Ok(RunOutcome::Failed(reason.to_string()));
            }
        } else {
            if self.linked_pass().await? == Flow::Cancel {
                return Ok(RunOutcome::Canceled);
            }
            let mapping = self.run.mapping();
            self.correlate = mapping.has_correlation()
                && (self.existing_targets > 0 || mapping.correlate_empty_target_set);
            if self.unseen_pass().await? == Flow::Cancel {
                return Ok(RunOutcome::Canceled);
            }
        }
        self.run.stats.time(Timed::SourcePhase, t.elapsed());
        if let Some(failed) = self.run.empty_source() {
            return Ok(failed);
        }

        if self.run_target_phase {
            if self.run.enter(Stage::ReconcilingTarget).await? == Flow::Cancel {
                return Ok(RunOutcome::Canceled);
            }
            let t = Instant::now();
            self.unassigned_pass().await?;
            self.run.stats.time(Timed::TargetPhase, t.elapsed());
        }

        if self.run.enter(Stage::ApplyingDeletes).await? == Flow::Cancel {
            return Ok(RunOutcome::Canceled);
        }
        if let Some(failed) = self
            .run
            .mass_change(self.held.len() as u64, self.existing_targets)
        {
            return Ok(failed);
        }
        self.apply_held().await?;
        Ok(RunOutcome::Success)
    }
}

/// `SELECT Id, <the mapped target fields> FROM <type> [WHERE <targetQuery>]`.
fn target_soql(
    mapping: &Mapping,
    target_query: Option<&Value>,
) -> Result<soql::UserSoql, soql::QueryError> {
    let text = format!(
        "SELECT {} FROM {}",
        target_fields(mapping, target_query).join(", "),
        target_object(mapping)
    );
    soql::UserSoql::finish(text, target_access(mapping, target_query), target_query)
}

fn target_object(mapping: &Mapping) -> &str {
    mapping.target.rsplit('/').next().unwrap_or(&mapping.target)
}

/// The names the mapping's property targets and the target query's `_fields` name.
fn target_names<'a>(mapping: &'a Mapping, target_query: Option<&'a Value>) -> Vec<&'a str> {
    soql::named_fields(
        mapping.properties.iter().map(|p| p.target.as_str()),
        target_query,
    )
}

/// The grants the mapping sets (only a `User` holds them).
fn target_access(mapping: &Mapping, target_query: Option<&Value>) -> AccessRead {
    match target_object(mapping).eq_ignore_ascii_case("User") {
        true => AccessRead::of(target_names(mapping, target_query)),
        false => AccessRead::default(),
    }
}

/// `Id`, every property's `target`, the `_fields` of the target query (a `validTarget`
/// script reading another field needs it listed there), then what reading the grants needs.
fn target_fields(mapping: &Mapping, target_query: Option<&Value>) -> Vec<String> {
    soql::select_list(
        &["Id"],
        &target_names(mapping, target_query),
        target_access(mapping, target_query),
    )
}

/// The fields of `mapped` whose values differ from what Salesforce holds in `current`. Empty
/// and null are one value; Salesforce keeps `Username` and `Email` in lower case, so those
/// compare without case. Grants compare as sets of names; a grant attribute the managed user
/// leaves null, and a role it leaves empty, are not idm-sync's to keep (implicit sync leaves
/// them alone too), so never drift.
fn drift(mapped: &Map<String, Value>, current: &Map<String, Value>) -> Vec<String> {
    mapped
        .iter()
        .filter(|(field, want)| {
            let have = current.get(field.as_str()).unwrap_or(&Value::Null);
            match is_access_attribute(field) {
                true => !same_grants(field, want, have),
                false => !same_value(field, want, have),
            }
        })
        .map(|(field, _)| field.clone())
        .collect()
}

fn same_grants(field: &str, want: &Value, have: &Value) -> bool {
    let blank = |v: &Value| v.is_null() || v.as_str() == Some("");
    if field == USER_ROLE || blank(want) {
        return blank(want) || want == have;
    }
    grant_names(want) == grant_names(have)
}

fn same_value(field: &str, want: &Value, have: &Value) -> bool {
    let blank = |v: &Value| v.is_null() || v.as_str() == Some("");
    if want == have || (blank(want) && blank(have)) {
        return true;
    }
    let caseless = field.eq_ignore_ascii_case("Username") || field.eq_ignore_ascii_case("Email");
    match (want, have) {
        (Value::String(a), Value::String(b)) if caseless => a.to_lowercase() == b.to_lowercase(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn drift_is_the_fields_whose_values_differ() {
        let mapped = map(
            json!({"FirstName": "Ann", "LastName": "Lee", "Title": null, "Username": "Ann@Example.com"}),
        );
        let held = map(
            json!({"Id": "005", "FirstName": "Ann", "LastName": "Li", "Title": "", "Username": "ann@example.com"}),
        );
        assert_eq!(drift(&mapped, &held), vec!["LastName".to_owned()]);
        let missing = map(json!({"Id": "005"}));
        let mut fields = drift(&mapped, &missing);
        fields.sort();
        assert_eq!(fields, vec!["FirstName", "LastName", "Username"]);
    }

    #[test]
    fn grants_drift_as_sets_and_only_where_the_managed_user_names_them() {
        let held = map(json!({
            "PermissionSets": ["A", "B"], "PublicGroups": ["G"], "UserRole": "CEO",
            "PermissionSetGroups": ["X"]
        }));
        let in_step = map(json!({
            "PermissionSets": ["B", "A"], "PublicGroups": ["G"], "UserRole": "CEO",
            "PermissionSetGroups": null
        }));
        assert!(drift(&in_step, &held).is_empty());
        let mut fields = drift(
            &map(json!({"PermissionSets": ["A"], "PublicGroups": [], "UserRole": ""})),
            &held,
        );
        fields.sort();
        assert_eq!(fields, ["PermissionSets", "PublicGroups"]);
        assert_eq!(
            drift(&map(json!({"UserRole": "VP"})), &held),
            ["UserRole".to_owned()]
        );
    }

    #[test]
    fn the_target_query_selects_the_mapped_fields() {
        let sync = crate::mapping::SyncConfig::from_json(&json!({"mappings": [{
            "name": "out", "source": "managed/user", "target": "system/salesforce/User",
            "properties": [{"source": "givenName", "target": "FirstName"},
                           {"source": "sn", "target": "LastName"}]
        }]}));
        let Ok(sync) = sync else {
            panic!("the mapping loads")
        };
        let Some(mapping) = sync.mapping("out") else {
            panic!("mapping out")
        };
        let q = json!({"_queryFilter": "IsActive eq true", "_fields": "Email"});
        assert_eq!(
            target_soql(mapping, Some(&q))
                .ok()
                .map(|s| s.text)
                .as_deref(),
            Some("SELECT Id, FirstName, LastName, Email FROM User WHERE IsActive = true")
        );
    }
}
