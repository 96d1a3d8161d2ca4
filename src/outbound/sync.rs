//! Applying managed-user changes to Salesforce (implicit sync, `managedUser_systemSalesforceUser`).
//!
//! [`SyncEngine::apply`] takes the changes the worker has ready (one per user: several events
//! of one user collapse into one), and for each:
//!
//! 1. loads the **current** managed user and its link (one query each for the whole batch);
//!    the event only says *which* user changed, so late, duplicated or reordered events all
//!    converge on the latest state (last write wins: ARCHITECTURE.md invariant 2);
//! 2. skips users whose link snapshot is already at (or past) the current revision: nothing
//!    to send, no API call;
//! 3. assesses the situation (implicit sync: CONFIRMED, ABSENT, FOUND…; a deleted user with a
//!    link is SOURCE_MISSING), correlating unlinked users with one SOQL query for the batch,
//!    and lets the mapping's policies decide the action;
//! 4. plans the write with the sync core (`planner::plan`, the target known only by the link's
//!    snapshot): CREATE sends the whole mapped object with its defaults; UPDATE only the delta
//!    between the link snapshot and the current user (invariant 4; none → no call); DELETE on
//!    Salesforce `User` is `IsActive=false`;
//! 5. writes creates and updates, each kind in one sObject Collections call (≤ 200 records)
//!    when there are several, or in a single-record call when alone;
//! 6. records, in one transaction, per record: links and snapshots, the clearing or recording
//!    of sync failures, and the audit rows. Only then may the worker ack.
//!
//! Salesforce's `User` target is assumed to exist while linked: checking would cost a call
//! per change. An UPDATE of a vanished user fails with NOT_FOUND and becomes a sync failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::access::{Catalog, Grants};
use super::authorization::AuthorizationGate;
use super::broker::BrokerSettings;
use super::correlation::{self, Matches};
use super::dead_letters::DeadLetters;
use super::topology::lanes_of;
use crate::audit_config::{AuditConfig, Topic};
use crate::mapping::{
    Action, Correlation, DEFAULT_LINK_QUALIFIER, DeletedSourceFacts, Event, LinkState, Mapping,
    PolicyScope, Situation, SourceFacts, SyncConfig, SyncContext, assess_deleted_source,
    assess_source,
};
use crate::metrics::Metrics;
use crate::planner::{self, Facts, Known, Write};
use crate::repo::links::{self, Link, NewLink, Side, Snapshot};
use crate::repo::managed::{self, StoredObject};
use crate::repo::sync_audit::{self, SyncAuditEntry};
use crate::repo::{self, Conn, Pool, RepoError, Tx, sync_failures, transaction};
use crate::salesforce::{ErrorKind, Record, SalesforceClient, SalesforceError};

pub use super::message::{OBJECT_RESOURCE, OBJECT_TYPE};

/// The mapping implicit sync applies to `system`: the one from [`OBJECT_RESOURCE`] to an object
/// type of that system, whatever its `enableSync` (the engine honours that itself).
pub fn outbound_mapping<'a>(sync: &'a SyncConfig, system: &str) -> Result<&'a Mapping, SyncError> {
    let prefix = format!("system/{system}/");
    let found: Vec<&Mapping> = sync
        .mappings
        .iter()
        .filter(|m| m.source == OBJECT_RESOURCE && m.target.starts_with(&prefix))
        .collect();
    match found.as_slice() {
        [] => Err(SyncError::NoOutboundMapping(system.to_owned())),
        [one] => Ok(one),
        several => Err(SyncError::SeveralOutboundMappings {
            system: system.to_owned(),
            names: several
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The error code of a sync failure whose user was written while some of its grants were not.
pub const ACCESS_REFUSED: &str = "ACCESS_NOT_GRANTED";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the outbound mapping {0:?} is not in sync.json")]
    NoMapping(String),
    #[error(
        "sync.json has no mapping from {OBJECT_RESOURCE} to system/{0}: the outbound worker has nothing to apply"
    )]
    NoOutboundMapping(String),
    #[error(
        "sync.json has several mappings from {OBJECT_RESOURCE} to system/{system} ({names}); idm-sync applies one per system"
    )]
    SeveralOutboundMappings { system: String, names: String },
    #[error("the sync state could not be read or written")]
    Repo(#[from] RepoError),
}

/// One user's pending change (all its delivered events collapsed).
#[derive(Debug, Clone)]
pub struct UserChange {
    pub object_id: String,
    /// The highest revision among its events.
    pub rev: i64,
    /// A re-enqueue (`sync` operation): applied even when the link is in step and implicit
    /// sync is off; with no `repair` fields, the full mapped object is pushed, ignoring the
    /// snapshot.
    pub force: bool,
    /// Target fields a reconciliation found different in the target system: pushed besides
    /// the delta since the snapshot (only with `force`).
    pub repair: Vec<String>,
    /// When the oldest of its events was committed (the audit's latency starts there).
    pub committed_at: DateTime<Utc>,
    /// Transient failures so far.
    pub attempts: u32,
    /// The retry bound is reached: a transient failure now becomes a sync failure.
    pub last_attempt: bool,
}

impl UserChange {
    /// Folds another change of the same user into this one: the later revision, the earlier
    /// commit, and what to push (everything wins over repair fields, which add up).
    pub fn absorb(&mut self, other: &UserChange) {
        self.rev = self.rev.max(other.rev);
        self.committed_at = self.committed_at.min(other.committed_at);
        self.attempts = self.attempts.max(other.attempts);
        let everything = |c: &UserChange| c.force && c.repair.is_empty();
        if everything(self) || everything(other) {
            self.repair.clear();
        } else {
            for field in &other.repair {
                if !self.repair.contains(field) {
                    self.repair.push(field.clone());
                }
            }
        }
        self.force |= other.force;
    }
}

/// What became of one change.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// In step (written, nothing to write, or already done), or durably recorded as a sync
    /// failure: ack.
    Done,
    /// A transient failure: try again later (not yet recorded).
    Retry { error: String },
    /// Salesforce's API allowance is spent: try again when it frees, attempts not counted.
    RateLimited,
    /// The connector cannot work until an operator authorizes it again (refresh token revoked
    /// or expired, none stored, client refused): wait for that, attempts not counted.
    AwaitingAuthorization,
}

/// A planned Salesforce write.
#[derive(Debug)]
enum SfWrite {
    Create(Record),
    Update { target_id: String, record: Record },
}

/// What a change needs once the situation is known.
#[derive(Debug)]
enum Plan {
    /// The link is already at this revision or later.
    Skip,
    /// A Salesforce write (an update may be empty: only grants change), the grants added
    /// and removed once it succeeded, then `after`.
    Write {
        write: SfWrite,
        grants: Grants,
        after: After,
    },
    /// No Salesforce call, only `after` (an UPDATE with an empty delta, LINK, UNLINK, IGNORE…).
    Local { after: After },
    /// The correlation query failed: retry (transient), wait (rate limit), or record the
    /// failure (`Outcome::Done` marks a permanent one).
    Defer(Outcome, String),
    /// A permanent failure, recorded without a call (EXCEPTION, a script error).
    Fail {
        code: Option<String>,
        message: String,
    },
}

/// The repository change that follows a successful write.
#[derive(Debug)]
enum After {
    /// Record the snapshot on the link (or create the link with it).
    Synced {
        link: Option<String>,
    },
    /// Remove the link (DELETE, UNLINK).
    Unlink {
        link: String,
    },
    /// Create a link without a snapshot (LINK).
    Link {
        target_id: String,
    },
    Nothing,
}

/// Per change: its situation and action, for audit and failures.
#[derive(Debug)]
struct Planned {
    situation: Situation,
    action: Action,
    target_id: Option<String>,
    plan: Plan,
}

#[derive(Clone)]
pub struct SyncEngine {
    pool: Pool,
    sync: Arc<SyncConfig>,
    mapping: String,
    metrics: Metrics,
    client: SalesforceClient,
    /// Which entries of the `sync` audit topic are written.
    audit: AuditConfig,
    /// The connector's access catalog (grant names to ids).
    catalog: Catalog,
    /// A deactivated user loses every grant (the provisioner's `removeAccessOnDeactivation`).
    revoke_on_deactivation: bool,
}

impl SyncEngine {
    /// An engine for `mapping` (e.g. `managedUser_systemSalesforceUser`).
    pub fn new(
        pool: Pool,
        sync: Arc<SyncConfig>,
        mapping: &str,
        client: SalesforceClient,
    ) -> Result<SyncEngine, SyncError> {
        let Some(found) = sync.mapping(mapping) else {
            return Err(SyncError::NoMapping(mapping.to_owned()));
        };
        if !found.enable_sync {
            tracing::warn!(
                mapping,
                "enableSync is false: managed changes are acknowledged without reaching Salesforce; the mapping's reconciliation (Admin UI: Reconcile) brings Salesforce in step"
            );
        }
        Ok(SyncEngine {
            pool,
            sync,
            mapping: mapping.to_owned(),
            client,
            metrics: Metrics::process(),
            audit: AuditConfig::default(),
            catalog: Catalog::default(),
            revoke_on_deactivation: false,
        })
    }

    /// Writes the `sync` audit topic as `audit` says (by default, as `conf/audit.json` ships).
    pub fn with_audit(mut self, audit: AuditConfig) -> SyncEngine {
        self.audit = audit;
        self
    }

    /// Removes a user's grants when it is deactivated (`removeAccessOnDeactivation`).
    pub fn with_access_removed_on_deactivation(mut self, on: bool) -> SyncEngine {
        self.revoke_on_deactivation = on;
        self
    }

    /// Observes sync latency into `metrics` instead of the process's registry.
    pub fn with_metrics(mut self, metrics: Metrics) -> SyncEngine {
        self.metrics = metrics;
        self
    }

    /// The gate that pauses a worker of this engine while its connector needs authorizing
    /// again or is disabled, looking for a new token every `poll`.
    pub fn authorization_gate(&self, poll: Duration) -> AuthorizationGate {
        AuthorizationGate::new(self.client.clone(), poll, self.metrics.clone())
    }

    /// The connector this engine writes to.
    pub fn client(&self) -> &SalesforceClient {
        &self.client
    }

    /// The name of the mapping this engine applies: the lane its worker consumes.
    pub fn mapping_name(&self) -> &str {
        &self.mapping
    }

    /// A consumer of the dead letters (of every lane: they share one queue): each becomes a
    /// sync failure of the mapping whose lane it died in, this engine's when that is unknown.
    pub fn dead_letters(&self, broker: BrokerSettings) -> DeadLetters {
        let link_type = self
            .mapping()
            .map_or(self.mapping.as_str(), Mapping::link_type);
        let lanes = lanes_of(&self.sync).into_iter().filter_map(|lane| {
            let link_type = self.sync.mapping(&lane)?.link_type().to_owned();
            Some((lane, link_type))
        });
        DeadLetters::new(self.pool.clone(), &self.mapping, link_type, broker).with_lanes(lanes)
    }

    fn mapping(&self) -> Result<&Mapping, SyncError> {
        self.sync
            .mapping(&self.mapping)
            .ok_or_else(|| SyncError::NoMapping(self.mapping.clone()))
    }

    /// Applies `changes` (at most one per user); one outcome per change, in order. An `Err`
    /// means nothing was recorded: the caller must not ack, and tries the batch again.
    pub async fn apply(&self, changes: &[UserChange]) -> Result<Vec<Outcome>, SyncError> {
        let mapping = self.mapping()?;
        if !mapping.enable_sync && changes.iter().any(|c| !c.force) {
            // IDM's enableSync: false: no implicit sync. What a reconciliation (or an operator's
            // retry) queued is not implicit: those `sync` changes are applied.
            let forced: Vec<UserChange> = changes.iter().filter(|c| c.force).cloned().collect();
            let mut applied = Box::pin(self.apply(&forced)).await?.into_iter();
            return Ok(changes
                .iter()
                .map(|c| match c.force {
                    true => applied.next().unwrap_or(Outcome::Done),
                    false => Outcome::Done,
                })
                .collect());
        }
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = changes.iter().map(|c| c.object_id.clone()).collect();
        // Users and their links read together, probing the indexes (see `repo::begin_lookups`).
        let mut lookups = repo::begin_lookups(&self.pool).await?;
        let users = load_users(&mut lookups, &ids).await?;
        let link_list = links::by_ids(
            &mut *lookups,
            mapping.link_type(),
            DEFAULT_LINK_QUALIFIER,
            Side::Second,
            &ids,
        )
        .await?;
        repo::commit(lookups).await?;
        let links_by_user: HashMap<&str, &Link> = link_list
            .iter()
            .map(|l| (l.second_id.as_str(), l))
            .collect();

        // Correlate the unlinked, qualifying users, in one query per chunk.
        let ctx = SyncContext::default();
        let mut to_correlate = Vec::new();
        for change in changes {
            if links_by_user.contains_key(change.object_id.as_str()) {
                continue;
            }
            if let Some((_, body)) = users.get(&change.object_id) {
                let source = Value::Object(body.clone());
                if matches!(mapping.source_qualifies(&source, &ctx), Ok(true)) {
                    to_correlate.push(change.object_id.as_str());
                }
            }
        }
        let mut correlated = match self.correlate(mapping, &users, &to_correlate).await {
            Ok(c) => c,
            Err(e) => {
                // Without correlation no unlinked user can be assessed; the linked ones can.
                tracing::warn!(error = %e, "correlation query failed");
                Correlated::Failed(failure_outcome(&e), e.to_string())
            }
        };
        // A single match already linked (to another managed user: ours are unlinked) is
        // FOUND_ALREADY_LINKED.
        if let Correlated::Found(out) = &mut correlated {
            correlation::mark_linked_elsewhere(&self.pool, mapping.link_type(), out).await?;
        }

        let mut planned = Vec::with_capacity(changes.len());
        for change in changes {
            let user = users.get(&change.object_id);
            let link = links_by_user.get(change.object_id.as_str()).copied();
            planned.push(self.plan(mapping, change, user, link, &correlated));
        }
        // Roles are set in the user's own write, as `UserRoleId`.
        let mut refused = self.resolve_roles(&mut planned).await;

        // Salesforce writes: creates together, updates together; an update left empty (only
        // grants change) needs no call.
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        let mut results: HashMap<usize, Result<String, SalesforceError>> = HashMap::new();
        for (i, p) in planned.iter().enumerate() {
            if let Plan::Write { write, .. } = &p.plan {
                match write {
                    SfWrite::Create(record) => creates.push((i, record.clone())),
                    SfWrite::Update { target_id, record } if record.is_empty() => {
                        results.insert(i, Ok(target_id.clone()));
                    }
                    SfWrite::Update { target_id, record } => {
                        updates.push((i, (target_id.clone(), record.clone())))
                    }
                }
            }
        }
        match creates.as_slice() {
            [] => {}
            [(i, record)] => {
                results.insert(*i, self.client.create(record).await);
            }
            many => {
                let records: Vec<Record> = many.iter().map(|(_, r)| r.clone()).collect();
                let out = self.client.create_many(&records).await;
                results.extend(many.iter().map(|(i, _)| *i).zip(out));
            }
        }
        match updates.as_slice() {
            [] => {}
            [(i, (id, record))] => {
                let r = self.client.update(id, record).await.map(|()| id.clone());
                results.insert(*i, r);
            }
            many => {
                let records: Vec<(String, Record)> = many.iter().map(|(_, u)| u.clone()).collect();
                let out = self.client.update_many(&records).await;
                results.extend(many.iter().map(|(i, _)| *i).zip(out));
            }
        }

        // Grants once their users exist.
        let granting: Vec<(usize, String, &Grants)> = planned
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match (&p.plan, results.get(&i)) {
                (Plan::Write { grants, .. }, Some(Ok(user))) if !grants.is_empty() => {
                    Some((i, user.clone(), grants))
                }
                _ => None,
            })
            .collect();
        let granted = match self.catalog.apply(&self.client, &granting).await {
            Ok(failed) => failed,
            Err(e) => granting
                .iter()
                .map(|(i, _, _)| (*i, vec![format!("grants: {e}")]))
                .collect(),
        };
        for (i, mut messages) in granted {
            refused.entry(i).or_default().append(&mut messages);
        }

        self.record(mapping, changes, &users, planned, results, refused)
            .await
    }

    /// Sets each planned write's role as `UserRoleId`; per change, the roles it could not set.
    async fn resolve_roles(&self, planned: &mut [Planned]) -> HashMap<usize, Vec<String>> {
        let mut records: Vec<(usize, &mut Record, &Grants)> = planned
            .iter_mut()
            .enumerate()
            .filter_map(|(i, p)| match &mut p.plan {
                Plan::Write { write, grants, .. } if grants.role.is_some() => {
                    let record = match write {
                        SfWrite::Create(record) => record,
                        SfWrite::Update { record, .. } => record,
                    };
                    Some((i, record, &*grants))
                }
                _ => None,
            })
            .collect();
        match self.catalog.resolve_roles(&self.client, &mut records).await {
            Ok(refused) => refused,
            Err(e) => records
                .iter()
                .map(|(i, _, _)| (*i, vec![format!("role: {e}")]))
                .collect(),
        }
    }

    /// Decides what one change needs.
    fn plan(
        &self,
        mapping: &Mapping,
        change: &UserChange,
        user: Option<&(i64, Map<String, Value>)>,
        link: Option<&Link>,
        correlated: &Correlated,
    ) -> Planned {
        let ctx = SyncContext::default();
        let fail = |situation, action, message: String| Planned {
            situation,
            action,
            target_id: link.map(|l| l.first_id.clone()),
            plan: Plan::Fail {
                code: None,
                message,
            },
        };
        let (situation, source) = match user {
            Some((rev, body)) => {
                // Already in step with this revision or a later one: duplicates, stale events.
                if !change.force && link.and_then(|l| l.synced_rev).is_some_and(|s| s >= *rev) {
                    return Planned {
                        situation: Situation::Confirmed,
                        action: Action::Update,
                        target_id: link.map(|l| l.first_id.clone()),
                        plan: Plan::Skip,
                    };
                }
                let source = Value::Object(body.clone());
                let qualifies = match mapping.source_qualifies(&source, &ctx) {
                    Ok(q) => q,
                    Err(e) => {
                        return fail(Situation::Unqualified, Action::Exception, e.to_string());
                    }
                };
                let (link_state, correlation) = match (link, qualifies) {
                    (Some(_), _) => (LinkState::LinkedTargetExists, Correlation::NotRun),
                    (None, false) => (LinkState::Unlinked, Correlation::NotRun),
                    (None, true) => match correlated {
                        Correlated::Failed(outcome, message) => {
                            return Planned {
                                situation: Situation::Absent,
                                action: Action::Create,
                                target_id: None,
                                plan: Plan::Defer(outcome.clone(), message.clone()),
                            };
                        }
                        Correlated::Found(map) => {
                            let found = map.get(&change.object_id);
                            match found {
                                None => (LinkState::Unlinked, Correlation::NotRun),
                                Some(m) => (
                                    LinkState::Unlinked,
                                    Correlation::Matches {
                                        count: m.ids.len(),
                                        linked_to_another_source: m.linked_elsewhere,
                                    },
                                ),
                            }
                        }
                    },
                };
                let situation = assess_source(SourceFacts {
                    qualifies,
                    link: link_state,
                    correlation,
                });
                (situation, Some(source))
            }
            None => {
                let facts = match link {
                    // validTarget would need the target read (a call per delete); the shipped
                    // mapping has none, and a configured one is assumed to hold.
                    Some(_) => DeletedSourceFacts::Linked {
                        target_qualifies: Some(true),
                    },
                    None => DeletedSourceFacts::Unlinked {
                        old_source_qualifies: None,
                        correlation: Correlation::NotRun,
                    },
                };
                (assess_deleted_source(facts), None)
            }
        };
        let scope = PolicyScope {
            source: source.as_ref(),
            target: None,
            link_qualifier: DEFAULT_LINK_QUALIFIER,
            source_phase: true,
            recon_id: None,
        };
        let action = match mapping.decide(situation, &scope) {
            Ok(d) => d.action,
            Err(e) => return fail(situation, Action::Exception, e.to_string()),
        };
        let found_target = match (correlated, user) {
            (Correlated::Found(map), Some(_)) if link.is_none() => map
                .get(&change.object_id)
                .and_then(|m| (m.ids.len() == 1).then(|| m.ids.first().cloned()).flatten()),
            _ => None,
        };
        let target_id = link.map(|l| l.first_id.clone()).or(found_target);
        let planned = |plan| Planned {
            situation,
            action,
            target_id: target_id.clone(),
            plan,
        };
        // A forced change without repair fields pushes everything; with them, the delta plus
        // those fields.
        let snapshot = link
            .filter(|_| !change.force || !change.repair.is_empty())
            .and_then(|l| l.synced_snapshot.clone())
            .map(Value::Object);
        let facts = Facts {
            situation,
            action,
            source: source.as_ref(),
            target: match &target_id {
                Some(id) => Known::InStepWith {
                    id,
                    snapshot: snapshot.as_ref(),
                },
                None => Known::Nothing,
            },
            linked: link.is_some(),
        };
        let failed = |message: String| {
            planned(Plan::Fail {
                code: None,
                message,
            })
        };
        let write = match planner::plan(mapping, &facts) {
            Ok(Write::Update(delta)) if change.force && !change.repair.is_empty() => {
                match (source.as_ref(), snapshot.is_some()) {
                    (Some(source), true) => {
                        match with_repairs(mapping, source, delta, &change.repair) {
                            Ok(update) => Write::Update(update),
                            Err(e) => return failed(e.to_string()),
                        }
                    }
                    _ => Write::Update(delta),
                }
            }
            Ok(write) => write,
            Err(e) => return failed(e.to_string()),
        };
        let local = |after| planned(Plan::Local { after });
        let synced = || After::Synced {
            link: link.map(|l| l.id.clone()),
        };
        // Grants are not user fields: taken out of the record, applied after its write.
        let (write, grants) = match write {
            Write::Create(object) => {
                // A null on create only means "no value".
                let mut record: Record = object.into_iter().filter(|(_, v)| !v.is_null()).collect();
                let grants = Grants::take(&mut record, None);
                (Write::Create(record), grants)
            }
            Write::Update(mut delta) => {
                let before = snapshot.as_ref().and_then(|s| {
                    mapping
                        .map_object(s, None, &SyncContext::default())
                        .ok()
                        .map(|m| m.object)
                });
                // A forced push (a resync, a repair of drift) wants its sets exactly as the
                // managed user names them, whatever Salesforce holds now.
                let exact = |attribute: &str| {
                    change.force
                        && (change.repair.is_empty()
                            || change.repair.iter().any(|f| f == attribute))
                };
                let mut grants = Grants::take_with(&mut delta, before.as_ref(), exact);
                if self.revoke_on_deactivation {
                    match delta.get("IsActive") {
                        Some(Value::Bool(false)) => grants.revoke_all = true,
                        // Reactivated: every grant it should have comes back.
                        Some(Value::Bool(true)) => {
                            if let Some(mut all) = source.as_ref().and_then(|s| {
                                mapping.map_object(s, None, &SyncContext::default()).ok()
                            }) {
                                grants.add = Grants::take(&mut all.object, None).add;
                            }
                        }
                        _ => {}
                    }
                }
                (Write::Update(delta), grants)
            }
            other => (other, Grants::default()),
        };
        match (write, &target_id) {
            (Write::Create(record), _) => planned(Plan::Write {
                write: SfWrite::Create(record),
                grants,
                after: After::Synced { link: None },
            }),
            (Write::Update(delta), _) if delta.is_empty() && grants.is_empty() => local(synced()),
            (Write::Update(delta), Some(target)) => planned(Plan::Write {
                write: SfWrite::Update {
                    target_id: target.clone(),
                    record: delta,
                },
                grants,
                after: synced(),
            }),
            // Salesforce users are deactivated, never deleted.
            (Write::Delete, Some(target)) => match link {
                Some(l) => {
                    if mapping.handles(Event::Delete)
                        && let Err(e) = mapping.notify(
                            Event::Delete,
                            source.as_ref(),
                            &known_target(mapping, l),
                            situation,
                        )
                    {
                        return failed(e.to_string());
                    }
                    let mut record = Record::new();
                    record.insert("IsActive".into(), Value::Bool(false));
                    planned(Plan::Write {
                        write: SfWrite::Update {
                            target_id: target.clone(),
                            record,
                        },
                        grants: Grants {
                            revoke_all: self.revoke_on_deactivation,
                            ..Grants::default()
                        },
                        after: After::Unlink { link: l.id.clone() },
                    })
                }
                None => local(After::Nothing),
            },
            (Write::Link, Some(t)) if link.is_none() => local(After::Link {
                target_id: t.clone(),
            }),
            (Write::Unlink | Write::DropLink, _) => match link {
                Some(l) => local(After::Unlink { link: l.id.clone() }),
                None => local(After::Nothing),
            },
            (Write::Exception, _) => failed(format!(
                "situation {situation}: the mapping's policy is EXCEPTION"
            )),
            _ => local(After::Nothing),
        }
    }

    /// Runs the mapping's correlation for `ids` (users of `users`).
    async fn correlate(
        &self,
        mapping: &Mapping,
        users: &HashMap<String, (i64, Map<String, Value>)>,
        ids: &[&str],
    ) -> Result<Correlated, SalesforceError> {
        let sources: Vec<(&str, &Map<String, Value>)> = ids
            .iter()
            .filter_map(|id| users.get(*id).map(|(_, body)| (*id, body)))
            .collect();
        correlation::correlate(&self.client, mapping, &sources)
            .await
            .map(Correlated::Found)
    }

    /// Records the outcomes in one transaction: links and snapshots, failures, audit.
    async fn record(
        &self,
        mapping: &Mapping,
        changes: &[UserChange],
        users: &HashMap<String, (i64, Map<String, Value>)>,
        planned: Vec<Planned>,
        mut results: HashMap<usize, Result<String, SalesforceError>>,
        mut refused: HashMap<usize, Vec<String>>,
    ) -> Result<Vec<Outcome>, SyncError> {
        let now = Utc::now();
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut audit = Vec::new();
        let mut cleared: Vec<(String, i64)> = Vec::new();
        let mut failures: Vec<PendingFailure> = Vec::new();
        // Commit times of the changes Salesforce acknowledged, for the latency histogram.
        let mut acknowledged: Vec<DateTime<Utc>> = Vec::new();
        // Links now in step, recorded together at the end (one statement per batch).
        let mut synced: Vec<links::Synced<'_>> = Vec::new();
        let mut tx = repo::begin(&self.pool).await?;
        for (i, (change, p)) in changes.iter().zip(planned).enumerate() {
            let user = users.get(&change.object_id);
            let rev = user.map_or(change.rev, |(rev, _)| *rev);
            let audit_of = AuditOf {
                mapping: &self.mapping,
                target_resource: &mapping.target,
                change,
                rev,
                situation: p.situation,
                action: p.action,
                now,
            };
            let entry = |status: &'static str, message: Option<String>, target: Option<&str>| {
                audit_of.entry(status, message, target)
            };
            // A change that ends as a sync failure: its audit entry and its failure row.
            let failure =
                |code: Option<String>, message: String, attempts: i32, target: Option<String>| {
                    (
                        entry("FAILURE", Some(message.clone()), target.as_deref()),
                        PendingFailure {
                            index: i,
                            situation: p.situation,
                            action: p.action,
                            code,
                            message,
                            attempts,
                            target,
                        },
                    )
                };
            match p.plan {
                Plan::Skip => {
                    cleared.push((change.object_id.clone(), rev));
                    outcomes.push(Outcome::Done);
                }
                Plan::Defer(Outcome::RateLimited, _) => outcomes.push(Outcome::RateLimited),
                Plan::Defer(Outcome::AwaitingAuthorization, _) => {
                    outcomes.push(Outcome::AwaitingAuthorization)
                }
                Plan::Defer(Outcome::Retry { error }, _) if !change.last_attempt => {
                    outcomes.push(Outcome::Retry { error })
                }
                Plan::Defer(_, message) => {
                    let message = format!("correlation query: {message}");
                    record_failure(
                        &mut audit,
                        &mut failures,
                        &mut outcomes,
                        failure(None, message, change.attempts as i32 + 1, None),
                    );
                }
                Plan::Fail { code, message } => {
                    record_failure(
                        &mut audit,
                        &mut failures,
                        &mut outcomes,
                        failure(code, message, 1, p.target_id.clone()),
                    );
                }
                Plan::Local { after } => {
                    let settled = Settled {
                        mapping,
                        change,
                        user,
                        situation: p.situation,
                        target_id: p.target_id.as_deref(),
                    };
                    let conflict = settled.record(&mut tx, &after, &mut synced).await?;
                    if let Some(message) = conflict {
                        record_failure(
                            &mut audit,
                            &mut failures,
                            &mut outcomes,
                            failure(None, message, 1, p.target_id.clone()),
                        );
                        continue;
                    }
                    cleared.push((change.object_id.clone(), rev));
                    if p.action != Action::Ignore {
                        audit.push(entry("SUCCESS", None, p.target_id.as_deref()));
                    }
                    outcomes.push(Outcome::Done);
                }
                Plan::Write { after, .. } => {
                    let result = results.remove(&i).unwrap_or_else(|| {
                        Err(SalesforceError::InvalidResponse(
                            "no result for the record".into(),
                        ))
                    });
                    match result {
                        Ok(target_id) => {
                            let settled = Settled {
                                mapping,
                                change,
                                user,
                                situation: p.situation,
                                target_id: Some(&target_id),
                            };
                            // Grants refused: the user is written and linked, but not in step
                            // (no new snapshot), so a retry or the next change tries them again.
                            let refusals = refused.remove(&i);
                            let after = match (&refusals, after) {
                                (Some(_), After::Synced { link: Some(_) }) => After::Nothing,
                                (Some(_), After::Synced { link: None }) => After::Link {
                                    target_id: target_id.clone(),
                                },
                                (_, after) => after,
                            };
                            let conflict = settled.record(&mut tx, &after, &mut synced).await?;
                            let conflict = match (conflict, refusals) {
                                (Some(message), _) => Some((None, message)),
                                (None, Some(refusals)) => Some((
                                    Some(ACCESS_REFUSED.to_owned()),
                                    format!(
                                        "the user is written, but not every grant: {}",
                                        refusals.join("; ")
                                    ),
                                )),
                                (None, None) => None,
                            };
                            if let Some((code, message)) = conflict {
                                record_failure(
                                    &mut audit,
                                    &mut failures,
                                    &mut outcomes,
                                    failure(code, message, 1, Some(target_id)),
                                );
                                continue;
                            }
                            cleared.push((change.object_id.clone(), rev));
                            audit.push(entry("SUCCESS", None, Some(&target_id)));
                            acknowledged.push(change.committed_at);
                            outcomes.push(Outcome::Done);
                        }
                        Err(e) => match failure_outcome(&e) {
                            Outcome::RateLimited => outcomes.push(Outcome::RateLimited),
                            Outcome::AwaitingAuthorization => {
                                outcomes.push(Outcome::AwaitingAuthorization)
                            }
                            Outcome::Retry { error } if !change.last_attempt => {
                                outcomes.push(Outcome::Retry { error })
                            }
                            _ => {
                                let message = e.to_string();
                                record_failure(
                                    &mut audit,
                                    &mut failures,
                                    &mut outcomes,
                                    failure(
                                        e.error_code().map(str::to_owned),
                                        message,
                                        change.attempts as i32 + 1,
                                        p.target_id.clone(),
                                    ),
                                );
                            }
                        },
                    }
                }
            }
        }
        links::record_synced(&mut *tx, &synced).await?;
        sync_failures::clear(&mut *tx, &self.mapping, OBJECT_TYPE, &cleared).await?;
        let with_context: Vec<sync_failures::NewFailure> = failures
            .iter()
            .filter_map(|f| {
                let change = changes.get(f.index)?;
                Some(sync_failures::NewFailure {
                    mapping: &self.mapping,
                    object_type: OBJECT_TYPE,
                    object_id: &change.object_id,
                    object_rev: users
                        .get(&change.object_id)
                        .map_or(change.rev, |(rev, _)| *rev),
                    target_id: f.target.as_deref(),
                    situation: f.situation.as_str(),
                    action: f.action.as_str(),
                    error_code: f.code.as_deref(),
                    message: &f.message,
                    attempts: f.attempts,
                })
            })
            .collect();
        sync_failures::record(&mut tx, &with_context).await?;
        audit.retain(|e| self.audit.admits(Topic::Sync, &e.event()));
        sync_audit::insert_batch(&mut *tx, &audit).await?;
        repo::commit(tx).await?;
        for committed_at in acknowledged {
            self.metrics.synced(
                self.client.system_name(),
                (now - committed_at).to_std().unwrap_or_default(),
            );
        }
        for f in &with_context {
            tracing::warn!(mapping = %self.mapping, user = f.object_id, rev = f.object_rev, code = ?f.error_code, message = f.message, "sync failure recorded");
        }
        Ok(outcomes)
    }
}

/// A change whose Salesforce side is settled (written, or nothing to write), with what the
/// repository must record for it.
struct Settled<'a, 'u> {
    mapping: &'a Mapping,
    change: &'a UserChange,
    user: Option<&'u (i64, Map<String, Value>)>,
    situation: Situation,
    target_id: Option<&'a str>,
}

impl<'u> Settled<'_, 'u> {
    /// The repository change `after` the write. `Some(message)`: the link could not be
    /// created because another one holds an id (a concurrent link of the same Salesforce or
    /// managed user); the change is then a sync failure rather than a poison batch that fails
    /// its whole transaction forever.
    async fn record(
        &self,
        tx: &mut Conn,
        after: &After,
        synced: &mut Vec<links::Synced<'u>>,
    ) -> Result<Option<String>, SyncError> {
        let Settled {
            mapping,
            change,
            user,
            situation,
            target_id,
        } = *self;
        match after {
            After::Nothing => Ok(None),
            After::Synced { link: Some(link) } => {
                if let Some((rev, body)) = user {
                    synced.push((link.clone(), body, *rev));
                }
                Ok(None)
            }
            After::Synced { link: None } => match (user, target_id) {
                (Some((rev, body)), Some(target)) => {
                    let snapshot = Some(Snapshot {
                        body,
                        rev: *rev,
                        source_digest: None,
                    });
                    let failed =
                        insert_link(tx, mapping, target, &change.object_id, snapshot).await?;
                    Ok(failed.or_else(|| link_hook(mapping, Event::Link, user, target, situation)))
                }
                _ => Ok(None),
            },
            After::Unlink { link } => {
                if let Some(e) = target_id
                    .and_then(|target| link_hook(mapping, Event::Unlink, user, target, situation))
                {
                    return Ok(Some(format!("the link is kept: {e}")));
                }
                links::delete_many(tx, std::slice::from_ref(link)).await?;
                Ok(None)
            }
            After::Link { target_id } => {
                let failed = insert_link(tx, mapping, target_id, &change.object_id, None).await?;
                Ok(failed.or_else(|| link_hook(mapping, Event::Link, user, target_id, situation)))
            }
        }
    }
}

/// The mapping's `onLink` once a link is made, or its `onUnlink` before one is removed, with
/// the managed user and the Salesforce id; the script's error, if it threw. After a link, the
/// Salesforce side is written already, so the link stays and the change fails (a sync failure,
/// whose retry then finds it linked).
fn link_hook(
    mapping: &Mapping,
    event: Event,
    user: Option<&(i64, Map<String, Value>)>,
    target_id: &str,
    situation: Situation,
) -> Option<String> {
    if !mapping.handles(event) {
        return None;
    }
    let source = user.map(|(_, body)| Value::Object(body.clone()));
    let target = serde_json::json!({ "_id": target_id });
    let error = mapping
        .notify(event, source.as_ref(), &target, situation)
        .err()?;
    Some(match event {
        Event::Link => format!("linked to Salesforce user {target_id}, but {error}"),
        _ => error.to_string(),
    })
}

/// What idm-sync knows of a linked Salesforce user without reading it: its id and the
/// mapping of the snapshot last in step with it.
fn known_target(mapping: &Mapping, link: &Link) -> Value {
    let mut target = link
        .synced_snapshot
        .as_ref()
        .and_then(|s| {
            mapping
                .map_object(&Value::Object(s.clone()), None, &SyncContext::default())
                .ok()
        })
        .map(|m| m.object)
        .unwrap_or_default();
    target.insert("_id".into(), Value::from(link.first_id.clone()));
    Value::Object(target)
}

/// Inserts a link inside a savepoint, so a unique conflict fails this change only.
async fn insert_link(
    tx: &mut Conn,
    mapping: &Mapping,
    target_id: &str,
    object_id: &str,
    snapshot: Option<Snapshot<'_>>,
) -> Result<Option<String>, SyncError> {
    let mut savepoint = transaction::begin(tx).await?;
    let link = NewLink {
        first_id: target_id,
        second_id: object_id,
        snapshot,
    };
    match links::insert(
        &mut savepoint,
        mapping.link_type(),
        DEFAULT_LINK_QUALIFIER,
        &link,
    )
    .await
    {
        Ok(_) => {
            savepoint.commit().await?;
            Ok(None)
        }
        Err(RepoError::Unique { constraint }) => {
            savepoint.rollback().await?;
            Ok(Some(format!(
                "Salesforce user {target_id} could not be linked: another link holds it ({constraint})"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// A failure to record once the batch's outcomes are known.
struct PendingFailure {
    index: usize,
    situation: Situation,
    action: Action,
    code: Option<String>,
    message: String,
    attempts: i32,
    target: Option<String>,
}

fn record_failure(
    audit: &mut Vec<SyncAuditEntry>,
    failures: &mut Vec<PendingFailure>,
    outcomes: &mut Vec<Outcome>,
    (entry, failure): (SyncAuditEntry, PendingFailure),
) {
    audit.push(entry);
    failures.push(failure);
    outcomes.push(Outcome::Done);
}

/// Correlation results for a batch.
#[derive(Debug)]
enum Correlated {
    Found(HashMap<String, Matches>),
    /// The query failed: how that affects the unlinked users, and why.
    Failed(Outcome, String),
}

/// How a Salesforce error affects one change.
fn failure_outcome(e: &SalesforceError) -> Outcome {
    match e.kind() {
        ErrorKind::RateLimited => Outcome::RateLimited,
        // Every change would fail the same way until an operator acts: wait, record nothing.
        ErrorKind::NeedsReauthorization | ErrorKind::NotAuthorized | ErrorKind::BadCredentials => {
            Outcome::AwaitingAuthorization
        }
        // A token store (Postgres) blip is no reason to give the change up either.
        ErrorKind::Transient | ErrorKind::Storage => Outcome::Retry {
            error: e.to_string(),
        },
        // Rejected, NotFound, anything unexpected: the
        // same call cannot succeed by itself; an operator retries after fixing the cause.
        _ => Outcome::Done,
    }
}

/// Loads the current managed users among `ids`: id → (rev, body).
async fn load_users(
    lookups: &mut Tx,
    ids: &[String],
) -> Result<HashMap<String, (i64, Map<String, Value>)>, SyncError> {
    let users = managed::by_ids(&mut **lookups, OBJECT_TYPE, ids).await?;
    Ok(users
        .into_iter()
        .map(|StoredObject { id, rev, body }| (id, (rev, body)))
        .collect())
}

/// What every audit entry of one change says, whatever its outcome.
struct AuditOf<'a> {
    mapping: &'a str,
    /// The mapping's target resource (`system/salesforce/User`).
    target_resource: &'a str,
    change: &'a UserChange,
    rev: i64,
    situation: Situation,
    action: Action,
    now: DateTime<Utc>,
}

impl AuditOf<'_> {
    fn entry(
        &self,
        status: &'static str,
        message: Option<String>,
        target: Option<&str>,
    ) -> SyncAuditEntry {
        let latency = (self.now - self.change.committed_at)
            .num_milliseconds()
            .max(0);
        SyncAuditEntry {
            mapping: self.mapping.to_owned(),
            situation: self.situation.as_str(),
            action: self.action.as_str(),
            status,
            message,
            source_object_id: format!("managed/{OBJECT_TYPE}/{}", self.change.object_id),
            target_object_id: target.map(|t| format!("{}/{t}", self.target_resource)),
            revision: self.rev,
            attempts: self.change.attempts.saturating_add(1),
            latency_ms: latency,
            timestamp: self
                .now
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

/// `delta` plus the mapped values (never a default) of the `repair` fields.
fn with_repairs(
    mapping: &Mapping,
    source: &Value,
    mut delta: Map<String, Value>,
    repair: &[String],
) -> Result<Map<String, Value>, crate::mapping::MappingError> {
    let mapped = mapping.map_object(source, None, &SyncContext::default())?;
    for field in repair {
        if mapped.defaulted.contains(field) {
            continue;
        }
        if let Some(value) = mapped.object.get(field) {
            delta.insert(field.clone(), value.clone());
        }
    }
    Ok(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_store_blip_is_retried_and_a_refused_record_is_not() {
        let blip = SalesforceError::TokenStore("connection reset".into());
        assert!(matches!(failure_outcome(&blip), Outcome::Retry { .. }));
        let refused = SalesforceError::InvalidResponse("no Id".into());
        assert_eq!(failure_outcome(&refused), Outcome::Done);
        let unreadable = SalesforceError::SecretsKey("another key".into());
        assert_eq!(failure_outcome(&unreadable), Outcome::AwaitingAuthorization);
    }

    fn change(force: bool, repair: &[&str]) -> UserChange {
        UserChange {
            object_id: "u".into(),
            rev: 1,
            force,
            repair: repair.iter().map(|f| (*f).to_owned()).collect(),
            committed_at: Utc::now(),
            attempts: 0,
            last_attempt: false,
        }
    }

    #[test]
    fn repair_fields_add_up_and_everything_wins() {
        let mut c = change(false, &[]);
        c.absorb(&change(true, &["LastName"]));
        c.absorb(&change(true, &["FirstName", "LastName"]));
        assert!(c.force);
        assert_eq!(c.repair, ["LastName", "FirstName"]);
        c.absorb(&change(true, &[]));
        assert!(c.force && c.repair.is_empty());
        c.absorb(&change(true, &["Alias"]));
        assert!(c.repair.is_empty(), "a full push stays a full push");
    }

    #[test]
    fn a_repair_sends_the_drifted_fields_beside_the_delta_but_no_default() {
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/sync.json"))
                .unwrap_or_default();
        let sync = SyncConfig::from_json(&serde_json::from_str(&shipped).unwrap_or(Value::Null));
        let Ok(sync) = sync else {
            panic!("the shipped sync.json loads")
        };
        let Some(mapping) = sync.mapping("managedUser_systemSalesforceUser") else {
            panic!("the outbound mapping")
        };
        let user = serde_json::json!({"userName": "ann@example.com", "givenName": "Ann", "sn": "Lee", "mail": "ann@example.com"});
        let mut delta = Map::new();
        delta.insert("Title".into(), Value::from("Boss"));
        let repaired = with_repairs(
            mapping,
            &user,
            delta,
            &["LastName".into(), "LocaleSidKey".into()],
        );
        let Ok(repaired) = repaired else {
            panic!("mapped")
        };
        let mut keys: Vec<&str> = repaired.keys().map(String::as_str).collect();
        keys.sort_unstable();
        // LocaleSidKey comes from a default in the shipped mapping: never pushed on update.
        assert_eq!(keys, ["LastName", "Title"]);
        assert_eq!(repaired["LastName"], "Lee");
    }
}
