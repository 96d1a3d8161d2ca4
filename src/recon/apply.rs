//! Applying a page's planned work: in one transaction, the managed writes (through the same
//! path as REST: policies, revisions, outbox rows), the link changes with their snapshots,
//! the seen-marks, the held-back deletes and the audit rows.
//!
//! A per-object failure (a policy, a duplicate userName) must not fail the page. Validation
//! failures leave the transaction usable, but a constraint violation aborts it; rather than
//! pay a savepoint per object on every page, the page is first applied without savepoints,
//! and only if an object fails is it rolled back and applied again with one savepoint per
//! object. Planned work is idempotent (updates re-read their object under a row lock), so
//! the replay is safe.
//!
//! On that first attempt, a part's UPDATEs and CREATEs are written together (for each, one
//! statement for the objects and one for their outbox rows; the updates' objects locked and
//! read in one more) instead of round trips per object; the replay writes them one by one,
//! so a failing one still fails alone.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::audited::{Audited, Phase};
use super::inbound::Inbound;
use super::run_state::Flow;
use super::summary::Timed;
use super::{ReconError, TARGET_RESOURCE, TARGET_TYPE, guard};
use crate::managed::ManagedError;
use crate::managed::Merged;
use crate::managed::service::merge;
use crate::mapping::{
    Action, DEFAULT_LINK_QUALIFIER, Decision, Event, MappingError, PolicyScope, Situation,
};
use crate::repo::audit::{self, ReconAuditEntry};
use crate::repo::event_subscriptions::Position;
use crate::repo::links::{self, NewLink, Snapshot};
use crate::repo::managed::{self, StoredObject};
use crate::repo::recon_runs::{self, HeldAction, PendingDelete};
use crate::repo::{self, Conn, RepoError, transaction};

/// A page is written in parts of at least this many entries, at most `MAX_PARTS` of them,
/// each its own transaction, side by side. Entries of a page are independent (they touch
/// different sources and targets); where two would meet on a unique user name, one waits
/// for the other's commit and then fails alone, as it would in one transaction.
const SPLIT_AT: usize = 200;
const MAX_PARTS: usize = 3;

/// Held-back deletes applied per transaction.
const HELD_BATCH: usize = 500;

/// What one transaction of a page wrote.
struct PartWritten {
    outcomes: Vec<Outcome>,
    /// Time spent writing its audit rows.
    audit_time: Duration,
    /// Rows held back for the guard.
    held: u64,
    /// Whether the position was stored with it (false: refused by its fence); `None`: not here.
    position_stored: Option<bool>,
}

/// One assessed object and what to do about it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub phase: Phase,
    pub source_id: Option<String>,
    pub target_id: Option<String>,
    pub situation: Option<Situation>,
    pub action: Option<Action>,
    /// Index of the deciding policy (for its postAction).
    pub policy: Option<usize>,
    pub source: Option<Value>,
    pub target: Option<Value>,
    pub work: Work,
    /// Assessment already failed (a script error): nothing to apply.
    pub error: Option<String>,
    /// The source record's digest under the mapping (source phase only).
    pub source_digest: Option<[u8; 32]>,
}

impl Entry {
    pub fn new(phase: Phase) -> Entry {
        Entry {
            phase,
            source_id: None,
            target_id: None,
            situation: None,
            action: None,
            policy: None,
            source: None,
            target: None,
            work: Work::Nothing,
            error: None,
            source_digest: None,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Work {
    Nothing,
    /// CREATE; `link_id` is the existing link of a MISSING source, pointed at the new object.
    Create {
        body: Map<String, Value>,
        link_id: Option<String>,
    },
    /// UPDATE of `target_id` with the mapped values.
    Update {
        target_id: String,
        changes: Map<String, Value>,
        current: Map<String, Value>,
        link: LinkPlan,
    },
    Link {
        target_id: String,
    },
    Unlink {
        link_id: String,
    },
    /// A linked object the fast path found unchanged (its source digest and revision match):
    /// nothing to load or write.
    Unchanged,
    /// DELETE, held back until the guard has counted every delete of the run.
    Delete {
        target_id: String,
    },
}

/// An UPDATE's inputs.
struct Update<'a> {
    source_id: String,
    target_id: &'a String,
    changes: Cow<'a, Map<String, Value>>,
    current: &'a Map<String, Value>,
    link: &'a LinkPlan,
    digest: Option<[u8; 32]>,
}

#[derive(Debug)]
pub(crate) enum LinkPlan {
    Existing {
        id: String,
        snapshot: Option<Map<String, Value>>,
        digest: Option<Vec<u8>>,
    },
    New,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Nothing,
    Created,
    Updated,
    Unchanged,
    Linked,
    Unlinked,
    /// A delete held back (or, in analyze mode, one that would be made).
    DeleteHeld,
    /// An update whose deactivation is held back for the guard (its other changes applied).
    DeactivationHeld,
    Failed(String),
}

impl Outcome {
    fn is_held(&self) -> bool {
        matches!(self, Outcome::DeleteHeld | Outcome::DeactivationHeld)
    }
}

/// Why applying one object stopped.
enum ApplyError {
    /// The object fails; the run goes on.
    Object(String),
    /// The database is gone or misbehaves: the run fails.
    Fatal(ReconError),
}

impl From<ManagedError> for ApplyError {
    fn from(e: ManagedError) -> Self {
        match e {
            ManagedError::Repo(r) => ApplyError::from(r),
            ManagedError::Policy(failures) => ApplyError::Object(format!(
                "Policy validation failed: {}",
                crate::managed::policy::detail(&failures)
            )),
            other => ApplyError::Object(other.to_string()),
        }
    }
}

impl From<MappingError> for ApplyError {
    fn from(e: MappingError) -> Self {
        ApplyError::Object(e.to_string())
    }
}

impl From<RepoError> for ApplyError {
    fn from(e: RepoError) -> Self {
        if e.is_unavailable() {
            ApplyError::Fatal(ReconError::Repo(e))
        } else {
            ApplyError::Object(crate::telemetry::error_chain(&e))
        }
    }
}

/// Whether an entry's outcome is written to the recon audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuditKind {
    /// Not an audit event: a quiet action (IGNORE, NOREPORT, ASYNC) that succeeded, or work
    /// held for the guard (audited when it is applied).
    None,
    /// Left out by `conf/audit.json` (counted in the summary).
    Filtered,
    Written,
}

/// A snapshot in step: the managed body, its revision, the source digest if recon saw it.
type InStep = (Map<String, Value>, i64, Option<[u8; 32]>);

/// A link to create: source id, target id, and the snapshot in step, if any.
type PlannedLink = (String, String, Option<InStep>);

/// Link changes collected over a page, written in a few statements.
#[derive(Default)]
struct LinkBatch<'a> {
    inserts: Vec<PlannedLink>,
    snapshots: Vec<(String, InStep)>,
    /// Source digests for links already in step (see `links::set_digests`).
    digests: Vec<(String, [u8; 32])>,
    deletes: Vec<String>,
    /// Numbered when the transaction writes them.
    held: Vec<PendingDelete>,
    /// Whether UPDATEs and CREATEs wait in `updates` and `creates` to be written together (the
    /// fast path, where any failure replays the page anyway) or are written one by one (the
    /// replay).
    defer_writes: bool,
    updates: Vec<PendingUpdate<'a>>,
    creates: Vec<PendingCreate>,
}

/// An UPDATE waiting for its batch, and where its outcome goes (`None`: the entry's outcome is
/// another, a held deactivation).
struct PendingUpdate<'a> {
    update: Update<'a>,
    outcome_at: Option<usize>,
}

/// A CREATE waiting for its batch: the new id, the body, the source, the link to retarget.
struct PendingCreate {
    id: String,
    body: Map<String, Value>,
    source_id: String,
    link_id: Option<String>,
    digest: Option<[u8; 32]>,
}

impl LinkBatch<'_> {
    async fn flush(&mut self, tx: &mut Conn, link_type: &str) -> Result<(), RepoError> {
        let new: Vec<NewLink> = self
            .inserts
            .iter()
            .map(|(first, second, snap)| NewLink {
                first_id: first,
                second_id: second,
                snapshot: snap.as_ref().map(|(body, rev, digest)| Snapshot {
                    body,
                    rev: *rev,
                    source_digest: digest.as_ref().map(|d| d.as_slice()),
                }),
            })
            .collect();
        links::delete_many(tx, &self.deletes).await?;
        links::insert_many(tx, link_type, DEFAULT_LINK_QUALIFIER, &new).await?;
        let snaps: Vec<(String, Snapshot)> = self
            .snapshots
            .iter()
            .map(|(id, (body, rev, digest))| {
                let snapshot = Snapshot {
                    body,
                    rev: *rev,
                    source_digest: digest.as_ref().map(|d| d.as_slice()),
                };
                (id.clone(), snapshot)
            })
            .collect();
        links::set_snapshots(tx, &snaps).await?;
        links::set_digests(tx, &self.digests).await?;
        Ok(())
    }
}

/// A change held back for the guard, numbered when its page is written.
fn held(
    entry: &Entry,
    target_id: &str,
    action: HeldAction,
    source: Option<Value>,
) -> PendingDelete {
    let assumed = match action {
        HeldAction::Deactivate => Situation::Confirmed,
        HeldAction::Delete => Situation::Unqualified,
    };
    PendingDelete {
        seq: 0,
        target_id: target_id.to_owned(),
        source_id: entry.source_id.clone(),
        situation: entry.situation.unwrap_or(assumed).as_str().into(),
        action,
        source,
    }
}

impl Inbound {
    /// Applies (or, in analyze mode, predicts) a page's work, runs postActions, counts, and
    /// writes the audit rows. `seen`: the targets this page touched.
    /// `last`: the run's last write may be this page's (see `ReconRequest::position`).
    pub(crate) async fn apply_page(
        &mut self,
        entries: &[Entry],
        seen: &[String],
        last: bool,
    ) -> Result<(), ReconError> {
        let t = Instant::now();
        // The targets this page touched: remembered, or past the memory cap written with it.
        let seen = match self.run_target_phase && !self.seen.remember(seen) {
            true if !self.run.req.analyze => seen,
            _ => &[][..],
        };
        let outcomes = if self.run.req.analyze {
            let outcomes: Vec<Outcome> = entries.iter().map(predict).collect();
            let audit = self.audit_rows(entries, &outcomes);
            audit::insert_batch(self.run.pool(), &self.run.id, &audit).await?;
            outcomes
        } else if let Some(outcomes) = self.read_only(entries, seen) {
            // The steady state of a re-recon: a page with nothing to write opens no transaction.
            outcomes
        } else {
            // The position commits with the page's writes if nothing is held back for later
            // (held deletes are written after the guard, and the position with them).
            let position = self.position.as_ref().filter(|_| last && self.held == 0);
            // Long pages are written as several transactions on as many connections, so
            // Postgres works on them at once; a page that carries the position is one.
            let parts = match position {
                Some(_) => 1,
                None => (entries.len() / SPLIT_AT).clamp(1, MAX_PARTS),
            };
            let size = entries.len().div_ceil(parts).max(1);
            let writes = entries.chunks(size).enumerate().map(|(i, part)| {
                let seen = if i == 0 { seen } else { &[][..] };
                self.apply_part(part, seen, self.pending_seq + (i * size) as i64, position)
            });
            let mut outcomes = Vec::with_capacity(entries.len());
            let mut stored = None;
            for part in futures_util::future::try_join_all(writes).await? {
                outcomes.extend(part.outcomes);
                self.run.stats.time(Timed::AuditLog, part.audit_time);
                self.held += part.held;
                stored = stored.or(part.position_stored);
            }
            if let Some(stored) = stored {
                self.position_stored(stored);
            }
            outcomes
        };
        // Held rows took sequence numbers below this (at most one per entry).
        self.pending_seq += entries.len() as i64;
        self.run.stats.time(Timed::Apply, t.elapsed());
        for (entry, outcome) in entries.iter().zip(&outcomes) {
            self.count(entry, outcome);
        }
        Ok(())
    }

    /// The outcomes of a page that writes nothing at all: every entry unchanged or a quiet
    /// action without a postAction, no mark to write, no audit row to keep. `None` otherwise.
    fn read_only(&self, entries: &[Entry], seen: &[String]) -> Option<Vec<Outcome>> {
        if !seen.is_empty() {
            return None;
        }
        let mapping = self.run.mapping();
        let outcomes = entries
            .iter()
            .map(|e| match (&e.work, &e.error) {
                (Work::Unchanged, None) => Some(Outcome::Unchanged),
                (Work::Nothing, None) => {
                    let post_action = e.policy.is_some_and(|index| {
                        mapping
                            .policies
                            .iter()
                            .any(|p| p.index == index && p.post_action.is_some())
                    });
                    (!post_action).then_some(Outcome::Nothing)
                }
                _ => None,
            })
            .collect::<Option<Vec<Outcome>>>()?;
        let audits = entries
            .iter()
            .zip(&outcomes)
            .any(|(e, o)| self.audit_kind(e, o) == AuditKind::Written);
        (!audits).then_some(outcomes)
    }

    fn count(&mut self, entry: &Entry, outcome: &Outcome) {
        if let Some(s) = entry.situation {
            self.run.stats.situation(s);
        }
        match self.audit_kind(entry, outcome) {
            AuditKind::Written => self.run.stats.audit_written += 1,
            AuditKind::Filtered => self.run.stats.audit_filtered += 1,
            AuditKind::None => {}
        }
        match outcome {
            Outcome::Created => {
                self.run.stats.created += 1;
                self.run.stats.links_created += 1;
            }
            Outcome::Updated => self.run.stats.updated += 1,
            Outcome::Unchanged => self.run.stats.unchanged += 1,
            Outcome::Linked => self.run.stats.links_created += 1,
            Outcome::DeleteHeld if self.run.req.analyze => self.run.stats.deleted += 1,
            _ => {}
        }
        if matches!(
            (entry.situation, outcome),
            (
                Some(Situation::Found),
                Outcome::Updated | Outcome::Unchanged
            )
        ) {
            self.run.stats.links_created += 1;
        }
        // Held work is counted when it is applied (or not, if the guard stops it).
        if outcome.is_held() && !self.run.req.analyze {
            return;
        }
        let failed =
            matches!(outcome, Outcome::Failed(_)) || entry.action == Some(Action::Exception);
        if failed {
            self.run.stats.failure += 1;
        } else {
            self.run.stats.success += 1;
        }
    }

    /// Applies entries in one transaction: first without savepoints, then, if an object
    /// failed, again with one savepoint per object. Held rows are numbered from `seq` + 1.
    /// `position` is stored in the transaction unless it holds rows back.
    async fn apply_part(
        &self,
        entries: &[Entry],
        seen: &[String],
        seq: i64,
        position: Option<&Position>,
    ) -> Result<PartWritten, ReconError> {
        match self.try_apply(entries, seen, false, seq, position).await? {
            Some(done) => Ok(done),
            None => Ok(self
                .try_apply(entries, seen, true, seq, position)
                .await?
                .ok_or_else(|| RepoError::Config("page replay did not complete".into()))?),
        }
    }

    /// One attempt at a transaction. `Ok(None)`: an object failed without savepoints; the
    /// caller replays with them.
    async fn try_apply(
        &self,
        entries: &[Entry],
        seen: &[String],
        savepoints: bool,
        seq: i64,
        position: Option<&Position>,
    ) -> Result<Option<PartWritten>, ReconError> {
        let link_type = self.run.mapping().link_type().to_owned();
        let mut tx = repo::begin(self.run.pool()).await?;
        let mut batch = LinkBatch {
            defer_writes: !savepoints,
            ..LinkBatch::default()
        };
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(message) = &entry.error {
                outcomes.push(Outcome::Failed(message.clone()));
                continue;
            }
            if !savepoints {
                let index = outcomes.len();
                match self.apply_one(&mut tx, entry, &mut batch, index).await {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(ApplyError::Object(_)) => return Ok(None),
                    Err(ApplyError::Fatal(e)) => return Err(e),
                }
                continue;
            }
            let mut sp = transaction::begin(&mut tx).await?;
            let mut one = LinkBatch::default();
            let index = outcomes.len();
            let result = match self.apply_one(&mut sp, entry, &mut one, index).await {
                Ok(outcome) => one
                    .flush(&mut sp, &link_type)
                    .await
                    .map(|()| outcome)
                    .map_err(ApplyError::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(outcome) => {
                    sp.commit().await?;
                    batch.held.append(&mut one.held);
                    outcomes.push(outcome);
                }
                Err(ApplyError::Object(message)) => {
                    sp.rollback().await?;
                    outcomes.push(Outcome::Failed(message));
                }
                Err(ApplyError::Fatal(e)) => return Err(e),
            }
        }
        if !savepoints {
            let written = match self.flush_updates(&mut tx, &mut batch, &mut outcomes).await {
                Ok(()) => self.flush_creates(&mut tx, &mut batch).await,
                Err(e) => Err(e),
            };
            let flushed = match written {
                Ok(()) => batch
                    .flush(&mut tx, &link_type)
                    .await
                    .map_err(ApplyError::from),
                Err(e) => Err(e),
            };
            match flushed {
                Ok(()) => {}
                Err(ApplyError::Object(_)) => return Ok(None),
                Err(ApplyError::Fatal(e)) => return Err(e),
            }
        }
        self.run_post_actions(entries, &mut outcomes);
        // Objects this run creates need no mark: the target phase reads only objects older
        // than the run.
        recon_runs::mark_seen(&mut tx, &self.run.id, seen).await?;
        for (i, held) in batch.held.iter_mut().enumerate() {
            held.seq = seq + i as i64 + 1;
        }
        recon_runs::add_pending_deletes(&mut tx, &self.run.id, &batch.held).await?;
        let t = Instant::now();
        let audit = self.audit_rows(entries, &outcomes);
        audit::insert_batch(&mut *tx, &self.run.id, &audit).await?;
        let audit_time = t.elapsed();
        let position_stored = match position {
            Some(position) if batch.held.is_empty() => Some(position.store(&mut *tx).await?),
            _ => None,
        };
        repo::commit(tx).await?;
        Ok(Some(PartWritten {
            outcomes,
            audit_time,
            held: batch.held.len() as u64,
            position_stored,
        }))
    }

    /// Applies one entry, whose outcome is the page's `index`th.
    async fn apply_one<'a>(
        &self,
        tx: &mut Conn,
        entry: &'a Entry,
        batch: &mut LinkBatch<'a>,
        index: usize,
    ) -> Result<Outcome, ApplyError> {
        let managed = &self.run.inner.managed;
        let source_id = entry.source_id.clone().unwrap_or_default();
        match &entry.work {
            Work::Nothing => Ok(Outcome::Nothing),
            Work::Create { body, link_id } => {
                let id = repo::new_id();
                if self.run.mapping().handles(Event::Link) {
                    let mut target = body.clone();
                    target.insert("_id".into(), Value::from(id.clone()));
                    let situation = entry.situation.unwrap_or(Situation::Absent);
                    self.run.mapping().notify(
                        Event::Link,
                        entry.source.as_ref(),
                        &Value::Object(target),
                        situation,
                    )?;
                }
                let create = PendingCreate {
                    id,
                    body: body.clone(),
                    source_id,
                    link_id: link_id.clone(),
                    digest: entry.source_digest,
                };
                if batch.defer_writes {
                    batch.creates.push(create);
                } else {
                    let object = managed
                        .create_in(tx, TARGET_TYPE, &create.id, create.body.clone())
                        .await?;
                    created(tx, batch, object, &create).await?;
                }
                Ok(Outcome::Created)
            }
            Work::Update {
                target_id,
                changes,
                link,
                current,
            } => {
                if matches!(link, LinkPlan::New) {
                    self.link_hook(entry)?;
                }
                let update = Update {
                    source_id,
                    target_id,
                    changes: Cow::Borrowed(changes),
                    current,
                    link,
                    digest: entry.source_digest,
                };
                if !self.holds_deactivations() || !guard::deactivates(current, changes) {
                    return self.update(tx, batch, update, Some(index)).await;
                }
                // The deactivation waits for the guard; the other changes go in now. The
                // object is not in step with its source until then: no digest.
                let mut rest = changes.clone();
                rest.remove(guard::STATUS_PROPERTY);
                let update = Update {
                    changes: Cow::Owned(rest),
                    digest: None,
                    ..update
                };
                self.update(tx, batch, update, None).await?;
                batch
                    .held
                    .push(held(entry, target_id, HeldAction::Deactivate, None));
                Ok(Outcome::DeactivationHeld)
            }
            Work::Link { target_id } => {
                self.link_hook(entry)?;
                // A plain LINK does not bring the objects in step: no snapshot.
                batch.inserts.push((source_id, target_id.clone(), None));
                Ok(Outcome::Linked)
            }
            Work::Unlink { link_id } => {
                let situation = entry.situation.unwrap_or(Situation::Unqualified);
                let target = entry.target.as_ref().unwrap_or(&Value::Null);
                self.run.mapping().notify(
                    Event::Unlink,
                    entry.source.as_ref(),
                    target,
                    situation,
                )?;
                batch.deletes.push(link_id.clone());
                Ok(Outcome::Unlinked)
            }
            Work::Unchanged => Ok(Outcome::Unchanged),
            Work::Delete { target_id } => {
                // The source is kept for the mapping's onDelete only.
                let source =
                    (entry.source.clone()).filter(|_| self.run.mapping().handles(Event::Delete));
                batch
                    .held
                    .push(held(entry, target_id, HeldAction::Delete, source));
                Ok(Outcome::DeleteHeld)
            }
        }
    }

    /// The mapping's `onLink` for a link made between the entry's source and target.
    fn link_hook(&self, entry: &Entry) -> Result<(), ApplyError> {
        let situation = entry.situation.unwrap_or(Situation::Found);
        let target = entry.target.as_ref().unwrap_or(&Value::Null);
        self.run
            .mapping()
            .notify(Event::Link, entry.source.as_ref(), target, situation)?;
        Ok(())
    }

    /// An UPDATE of `target_id` with `changes`, and its link's snapshot.
    async fn update<'a>(
        &self,
        tx: &mut Conn,
        batch: &mut LinkBatch<'a>,
        update: Update<'a>,
        outcome_at: Option<usize>,
    ) -> Result<Outcome, ApplyError> {
        // The steady state of a re-recon: the mapped values are already there and the
        // link's snapshot agrees. Nothing to lock or write (a concurrent REST edit is
        // the worker's to push, and the next recon's to see).
        if let LinkPlan::Existing {
            id,
            snapshot: Some(snapshot),
            digest: stored,
        } = update.link
        {
            let mut after = update.current.clone();
            merge(&mut after, &update.changes);
            if after == *update.current && snapshot == update.current {
                // In step with this source: remember its digest, so the next run skips it.
                if let Some(d) = update.digest
                    && stored.as_deref() != Some(d.as_slice())
                {
                    batch.digests.push((id.clone(), d));
                }
                return Ok(Outcome::Unchanged);
            }
        }
        if batch.defer_writes {
            batch.updates.push(PendingUpdate { update, outcome_at });
            // Settled when the batch is written (`flush_updates`).
            return Ok(Outcome::Updated);
        }
        // Managed writes keep the page's order: the CREATEs waiting before this
        // update are written first (a userName it frees or takes decides theirs).
        self.flush_creates(tx, batch).await?;
        let merged = self
            .run
            .inner
            .managed
            .merge_in(tx, TARGET_TYPE, update.target_id, &update.changes)
            .await?
            .ok_or_else(|| gone(update.target_id))?;
        Ok(record_update(batch, update, merged))
    }

    /// Writes the UPDATEs waiting in `batch` together and settles their outcomes. They go
    /// before the page's CREATEs: a userName an update frees is then free for a create; one
    /// both want fails the statement, and the replay decides it in the page's order.
    async fn flush_updates(
        &self,
        tx: &mut Conn,
        batch: &mut LinkBatch<'_>,
        outcomes: &mut [Outcome],
    ) -> Result<(), ApplyError> {
        if batch.updates.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut batch.updates);
        let items: Vec<(&str, &Map<String, Value>)> = pending
            .iter()
            .map(|p| (p.update.target_id.as_str(), p.update.changes.as_ref()))
            .collect();
        let merged = self
            .run
            .inner
            .managed
            .merge_many_in(tx, TARGET_TYPE, &items)
            .await?;
        drop(items);
        for (p, merged) in pending.into_iter().zip(merged) {
            let merged = merged.ok_or_else(|| gone(p.update.target_id))?;
            let outcome = record_update(batch, p.update, merged);
            if let Some(slot) = p.outcome_at.and_then(|i| outcomes.get_mut(i)) {
                *slot = outcome;
            }
        }
        Ok(())
    }

    /// Whether this run holds deactivations back for the guard (it can stop them).
    fn holds_deactivations(&self) -> bool {
        !(self.run.req.allow_mass_change
            || self.run.req.analyze
            || self.run.req.source_id.is_some())
    }

    /// Writes the CREATEs waiting in `batch` in a few statements, then records their links.
    async fn flush_creates(
        &self,
        tx: &mut Conn,
        batch: &mut LinkBatch<'_>,
    ) -> Result<(), ApplyError> {
        if batch.creates.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut batch.creates);
        let objects: Vec<(String, Map<String, Value>)> = pending
            .iter_mut()
            .map(|c| (c.id.clone(), std::mem::take(&mut c.body)))
            .collect();
        let stored = self
            .run
            .inner
            .managed
            .create_many_in(tx, TARGET_TYPE, objects)
            .await?;
        for (create, object) in pending.iter().zip(stored) {
            created(tx, batch, object, create).await?;
        }
        Ok(())
    }

    /// The deciding policies' postActions, after their action; a failing one fails its object.
    fn run_post_actions(&self, entries: &[Entry], outcomes: &mut [Outcome]) {
        let mapping = self.run.mapping();
        for (entry, outcome) in entries.iter().zip(outcomes.iter_mut()) {
            let (Some(index), Some(situation), Some(action)) =
                (entry.policy, entry.situation, entry.action)
            else {
                continue;
            };
            let Some(policy) = mapping.policies.iter().find(|p| p.index == index) else {
                continue;
            };
            if policy.post_action.is_none() || matches!(outcome, Outcome::Failed(_)) {
                continue;
            }
            let decision = Decision {
                situation,
                action,
                policy: Some(policy),
            };
            let scope = PolicyScope {
                source: entry.source.as_ref(),
                target: entry.target.as_ref(),
                link_qualifier: DEFAULT_LINK_QUALIFIER,
                source_phase: entry.phase == Phase::Source,
                recon_id: Some(&self.run.id),
            };
            if let Err(e) = decision.run_post_action(mapping, &scope) {
                *outcome = Outcome::Failed(e.to_string());
            }
        }
    }

    /// What an entry's outcome looks like to the audit, and whether `conf/audit.json` writes it.
    fn audited<'a>(&self, entry: &'a Entry, outcome: &Outcome) -> (AuditKind, Audited<'a>) {
        let failed = matches!(outcome, Outcome::Failed(_));
        let status = if failed || entry.action == Some(Action::Exception) {
            "FAILURE"
        } else {
            "SUCCESS"
        };
        let about = Audited {
            phase: entry.phase,
            source_id: entry.source_id.as_deref(),
            target_id: entry.target_id.as_deref(),
            situation: entry.situation,
            action: entry.action,
            status,
            unchanged: matches!(outcome, Outcome::Unchanged),
        };
        let quiet = matches!(
            entry.action,
            Some(Action::Ignore | Action::NoReport | Action::Async)
        );
        let kind = if (quiet && !failed) || (outcome.is_held() && !self.run.req.analyze) {
            AuditKind::None
        } else if self.run.admits(&about) {
            AuditKind::Written
        } else {
            AuditKind::Filtered
        };
        (kind, about)
    }

    fn audit_kind(&self, entry: &Entry, outcome: &Outcome) -> AuditKind {
        self.audited(entry, outcome).0
    }

    fn audit_rows(&self, entries: &[Entry], outcomes: &[Outcome]) -> Vec<ReconAuditEntry> {
        entries
            .iter()
            .zip(outcomes)
            .filter_map(|(entry, outcome)| {
                let (kind, about) = self.audited(entry, outcome);
                if kind != AuditKind::Written {
                    return None;
                }
                let message = match outcome {
                    Outcome::Failed(m) => Some(m.clone()),
                    _ if entry.action == Some(Action::Exception) => Some(format!(
                        "Situation {}: the mapping's policy for it is EXCEPTION",
                        entry.situation.map_or("?", Situation::as_str)
                    )),
                    _ if self.run.req.analyze => {
                        Some("analyze: assessed only, nothing was written".into())
                    }
                    Outcome::Unchanged => Some("target unchanged".into()),
                    _ => None,
                };
                Some(self.run.audit_entry(&about, message))
            })
            .collect()
    }

    /// Applies the held-back deletes once the guard allowed them, a batch per transaction.
    pub(crate) async fn apply_pending_deletes(&mut self) -> Result<Flow, ReconError> {
        if self.run.req.analyze {
            return Ok(Flow::Go);
        }
        let link_type = self.run.mapping().link_type().to_owned();
        let mut after = 0;
        loop {
            let batch = recon_runs::pending_deletes(
                self.run.pool(),
                &self.run.id,
                after,
                HELD_BATCH as i64,
            )
            .await?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            let mut tx = repo::begin(self.run.pool()).await?;
            let mut audit_rows = Vec::with_capacity(batch.len());
            for d in &batch {
                let mut sp = transaction::begin(&mut tx).await?;
                let result = match d.action {
                    HeldAction::Delete => self.held_delete(&mut sp, &link_type, d).await,
                    HeldAction::Deactivate => {
                        self.held_deactivation(&mut sp, &link_type, &d.target_id)
                            .await
                    }
                };
                let situation = Situation::from_name(&d.situation);
                let phase = if d.source_id.is_some() {
                    Phase::Source
                } else {
                    Phase::Target
                };
                let (status, message, unchanged) = match result {
                    Ok(changed) => {
                        sp.commit().await?;
                        match (changed, d.action) {
                            (true, HeldAction::Delete) => self.run.stats.deleted += 1,
                            (true, HeldAction::Deactivate) => self.run.stats.updated += 1,
                            (false, _) => {}
                        }
                        self.run.stats.success += 1;
                        ("SUCCESS", None, !changed)
                    }
                    Err(ApplyError::Object(message)) => {
                        sp.rollback().await?;
                        self.run.stats.failure += 1;
                        ("FAILURE", Some(message), false)
                    }
                    Err(ApplyError::Fatal(e)) => return Err(e),
                };
                let about = Audited {
                    phase,
                    source_id: d.source_id.as_deref(),
                    target_id: Some(&d.target_id),
                    situation,
                    action: Some(match d.action {
                        HeldAction::Delete => Action::Delete,
                        HeldAction::Deactivate => Action::Update,
                    }),
                    status,
                    unchanged,
                };
                if self.run.admits(&about) {
                    self.run.stats.audit_written += 1;
                    audit_rows.push(self.run.audit_entry(&about, message));
                } else {
                    self.run.stats.audit_filtered += 1;
                }
            }
            audit::insert_batch(&mut *tx, &self.run.id, &audit_rows).await?;
            // A short batch is the last: the position commits with it.
            let position = self.position.as_ref().filter(|_| batch.len() < HELD_BATCH);
            let stored = match position {
                Some(position) => Some(position.store(&mut *tx).await?),
                None => None,
            };
            repo::commit(tx).await?;
            if let Some(stored) = stored {
                self.position_stored(stored);
            }
            if self.run.checkpoint().await? == Flow::Cancel {
                return Ok(Flow::Cancel);
            }
        }
        Ok(Flow::Go)
    }
}

impl Inbound {
    /// A held DELETE: the mapping's `onDelete` (a throw keeps the object), then the object
    /// and its link. `Ok(false)`: it was already gone.
    async fn held_delete(
        &self,
        tx: &mut Conn,
        link_type: &str,
        held: &PendingDelete,
    ) -> Result<bool, ApplyError> {
        let target_id = held.target_id.as_str();
        if self.run.mapping().handles(Event::Delete) {
            let target =
                managed::by_ids(&mut *tx, TARGET_TYPE, std::slice::from_ref(&held.target_id))
                    .await?;
            if let Some(object) = target.first() {
                let situation =
                    Situation::from_name(&held.situation).unwrap_or(Situation::Unqualified);
                self.run.mapping().notify(
                    Event::Delete,
                    held.source.as_ref(),
                    &object.to_value(),
                    situation,
                )?;
            }
        }
        let gone = self
            .run
            .inner
            .managed
            .delete_in(tx, TARGET_TYPE, target_id, None)
            .await?;
        links::delete_by_second_id(tx, link_type, DEFAULT_LINK_QUALIFIER, target_id).await?;
        Ok(gone.is_some())
    }

    /// A held deactivation: `accountStatus` turns `inactive`, and the link's snapshot follows,
    /// since Salesforce already shows the user inactive (nothing to echo back).
    async fn held_deactivation(
        &self,
        tx: &mut Conn,
        link_type: &str,
        target_id: &str,
    ) -> Result<bool, ApplyError> {
        let mut change = Map::new();
        change.insert(guard::STATUS_PROPERTY.into(), guard::INACTIVE.into());
        let Some(merged) = self
            .run
            .inner
            .managed
            .merge_in(tx, TARGET_TYPE, target_id, &change)
            .await?
        else {
            return Ok(false);
        };
        let link =
            links::by_second_id(&mut *tx, link_type, DEFAULT_LINK_QUALIFIER, target_id).await?;
        if let Some(link) = link {
            let snapshot = Snapshot {
                body: &merged.object.body,
                rev: merged.object.rev,
                source_digest: None,
            };
            links::set_snapshots(tx, &[(link.id, snapshot)]).await?;
        }
        Ok(merged.changed)
    }
}

fn gone(target_id: &str) -> ApplyError {
    ApplyError::Object(format!(
        "{TARGET_RESOURCE}/{target_id} was deleted during the reconciliation"
    ))
}

/// An UPDATE's link after its merge: the snapshot refreshed (or the new link made) with the
/// object as written; the outcome.
fn record_update(batch: &mut LinkBatch<'_>, update: Update<'_>, merged: Merged) -> Outcome {
    let object = merged.object;
    match update.link {
        LinkPlan::Existing { id, snapshot, .. } => {
            // The snapshot says what Salesforce last agreed with: refresh it when the object
            // changed, or when it lags (written before by a REST edit that Salesforce now
            // shows as well).
            if merged.changed || snapshot.as_ref() != Some(&object.body) {
                batch
                    .snapshots
                    .push((id.clone(), (object.body, object.rev, update.digest)));
            }
        }
        LinkPlan::New => batch.inserts.push((
            update.source_id,
            update.target_id.clone(),
            Some((object.body, object.rev, update.digest)),
        )),
    }
    if merged.changed {
        Outcome::Updated
    } else {
        Outcome::Unchanged
    }
}

/// Links a created object to its source: the existing link of a MISSING source is pointed
/// at it, otherwise a new link waits in the batch; both carry the object as the snapshot.
async fn created(
    tx: &mut Conn,
    batch: &mut LinkBatch<'_>,
    object: StoredObject,
    create: &PendingCreate,
) -> Result<(), ApplyError> {
    match &create.link_id {
        Some(link_id) => {
            let snapshot = Snapshot {
                body: &object.body,
                rev: object.rev,
                source_digest: create.digest.as_ref().map(|d| d.as_slice()),
            };
            links::retarget(tx, link_id, &object.id, Some(snapshot)).await?;
        }
        None => batch.inserts.push((
            create.source_id.clone(),
            object.id,
            Some((object.body, object.rev, create.digest)),
        )),
    }
    Ok(())
}

/// What analyze mode reports for an entry.
fn predict(entry: &Entry) -> Outcome {
    if let Some(message) = &entry.error {
        return Outcome::Failed(message.clone());
    }
    match &entry.work {
        Work::Nothing => Outcome::Nothing,
        Work::Create { .. } => Outcome::Created,
        Work::Update {
            changes, current, ..
        } => {
            let mut after = current.clone();
            merge(&mut after, changes);
            if after == *current {
                Outcome::Unchanged
            } else {
                Outcome::Updated
            }
        }
        Work::Link { .. } => Outcome::Linked,
        Work::Unlink { .. } => Outcome::Unlinked,
        Work::Unchanged => Outcome::Unchanged,
        Work::Delete { .. } => Outcome::DeleteHeld,
    }
}
