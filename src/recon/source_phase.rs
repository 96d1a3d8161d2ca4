//! The source phase: Salesforce pages, each handled set-wise (see the module notes in
//! `mod.rs`), and the planning of work shared with the target phase.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::Stream;
use serde_json::Value;

use super::apply::{Entry, LinkPlan, Work};
use super::audited::Phase;
use super::in_step::{InStep, Loading, plain_confirmed_update};
use super::inbound::Inbound;
use super::run_state::Flow;
use super::summary::Timed;
use super::user_pages::UserPages;
use super::{Inner, ReconError, TARGET_TYPE};
use crate::filter::Filter;
use crate::mapping::{
    Action, Correlation, CorrelationRequest, DEFAULT_LINK_QUALIFIER, LinkState, Mapping,
    MappingError, PolicyScope, Situation, SourceFacts, SyncContext, assess_source,
};
use crate::planner::{self, Facts, Known, Write};
use crate::repo::links::{self, Link, Side};
use crate::repo::managed::{self, StoredObject};
use crate::repo::{self, RepoError, Tx, recon_runs};
use crate::salesforce::{QueryPage, Record, SalesforceError};

/// Records per page from which the unchanged check runs as two statements side by side.
const SPLIT_CHECK_AT: usize = 500;

/// Correlation filters per SQL statement (each a branch of a `UNION ALL`).
const CORRELATION_CHUNK: usize = 100;

/// One source record on its way through the page.
struct Pending {
    id: String,
    source: Value,
    qualifies: Result<bool, MappingError>,
    link: Option<Link>,
    target: Option<StoredObject>,
    correlation: Option<Result<CorrelationRequest, MappingError>>,
}

impl Inbound {
    /// Pages flow through three steps side by side: while page N is written, page N+1 is
    /// assessed and page N+2 fetched. Page N+1's assessment reads the repository before page
    /// N's writes commit; it is checked against them afterwards and made again in the rare
    /// case they could have changed it (see [`Assessed::still_valid_after`]). At most three
    /// pages are held, so memory stays flat; a cancel costs at most those reads.
    pub(crate) async fn source_phase(&mut self) -> Result<Flow, ReconError> {
        let client = self.run.client.clone();
        let batch = self.run.inner.settings.source_batch_size;
        let soql = self.soql.clone();
        let stream = std::pin::pin!(client.query_with_batch_size(&soql.text, batch));
        let read_state = std::mem::take(&mut self.read_state);
        let mut pages = UserPages::new(stream, client.clone(), soql, batch, read_state);
        let flow = self.pages(&mut pages).await;
        self.read_state = pages.into_read_state();
        flow
    }

    async fn pages(
        &mut self,
        pages: &mut UserPages<impl Stream<Item = Result<QueryPage, SalesforceError>> + Unpin>,
    ) -> Result<Flow, ReconError> {
        let assessor = self.assessor();
        let mut fetch = async || pages.next().await;
        let (first, took) = fetch().await;
        self.run.stats.time(Timed::SourceQuery, took);
        let Some(first) = first? else {
            return Ok(Flow::Go);
        };
        self.run.stats.source_total = Some(first.total_size);
        let (assessed, (fetched, took)) = tokio::join!(assessor.assess(first.records), fetch());
        let mut current = assessed?;
        let mut next = fetched?;
        self.run.stats.time(Timed::SourceQuery, took);
        loop {
            let mut copy = None;
            let last = next.is_none();
            let ahead = next.take().map(|page| {
                self.run.stats.source_total = Some(page.total_size);
                // Kept for a second assessment, should this page's writes call for one.
                if current.writes() {
                    copy = Some(page.records.clone());
                }
                page.records
            });
            // A task of its own, so its CPU work (scripts, digests) runs on the other core
            // instead of holding up this task's writes.
            let task = ahead.map(|records| {
                let assessor = assessor.clone();
                tokio::spawn(async move { assessor.assess(records).await })
            });
            let _abort = AbortOnDrop(task.as_ref().map(|t| t.abort_handle()));
            let assess_ahead = async move {
                match task {
                    Some(task) => Some(task.await),
                    None => None,
                }
            };
            let (written, assessed, (fetched, took)) =
                tokio::join!(self.write_page(&current, last), assess_ahead, fetch());
            written?;
            let Some(assessed) = assessed else {
                break;
            };
            let mut assessed = assessed.map_err(|e| ReconError::Assessment(e.to_string()))??;
            if !assessed.still_valid_after(&current) {
                assessed = assessor.assess(copy.unwrap_or_default()).await?;
            }
            current = assessed;
            next = fetched?;
            self.run.stats.time(Timed::SourceQuery, took);
            self.refresh_statistics().await?;
            if self.run.checkpoint().await? == Flow::Cancel {
                return Ok(Flow::Cancel);
            }
        }
        self.refresh_statistics().await?;
        if self.run.checkpoint().await? == Flow::Cancel {
            return Ok(Flow::Cancel);
        }
        Ok(Flow::Go)
    }

    /// What assessing needs, owned, so it can run beside [`Inbound::write_page`].
    fn assessor(&self) -> Assessor {
        Assessor {
            inner: self.run.inner.clone(),
            mapping_index: self.run.mapping_index,
            recon_id: self.run.id.clone(),
            correlate: self.correlate,
            existing_targets: self.existing_targets,
            in_step: self.in_step.as_ref().map(Loading::share),
        }
    }

    /// Writes an assessed page (the source's `last`) and counts what its assessment saw.
    async fn write_page(&mut self, page: &Assessed, last: bool) -> Result<(), ReconError> {
        for (timed, took) in &page.timings {
            self.run.stats.time(*timed, *took);
        }
        self.run.stats.links_processed += page.links_processed;
        self.run.stats.source_processed += page.source_processed;
        if self.run_target_phase {
            self.seen.remember_keys(&page.seen_keys);
        }
        // The position goes with the run's last write: a target phase would write after it.
        let last = last && !self.run_target_phase;
        self.apply_page(&page.entries, &page.seen, last).await
    }
}

/// A source page assessed and waiting to be written.
struct Assessed {
    entries: Vec<Entry>,
    /// The targets it touched (the target phase skips them), by id, and by key where the
    /// links in step were read up front.
    seen: Vec<String>,
    seen_keys: Vec<u64>,
    /// Whether any of its sources ran a correlation query.
    correlated: bool,
    timings: Vec<(Timed, Duration)>,
    links_processed: u64,
    source_processed: u64,
}

impl Assessed {
    /// Whether writing this page may change the repository (conservatively: any planned work).
    fn writes(&self) -> bool {
        self.entries
            .iter()
            .any(|e| !matches!(e.work, Work::Nothing | Work::Unchanged))
    }

    /// Whether this assessment, made before `before`'s writes committed, is still what it
    /// would be after them. An assessment reads the links of its own sources, the targets
    /// they (or its correlation queries) point at, and, for unlinked sources, correlation
    /// matches. A page that writes nothing changes none of those; otherwise the pages must
    /// share no source and no target, and this one must not have correlated (a target the
    /// page before created or changed could now match).
    fn still_valid_after(&self, before: &Assessed) -> bool {
        if !before.writes() {
            return true;
        }
        if self.correlated {
            return false;
        }
        let sources: HashSet<&str> = before
            .entries
            .iter()
            .filter_map(|e| e.source_id.as_deref())
            .collect();
        let targets: HashSet<&str> = before
            .entries
            .iter()
            .filter_map(|e| e.target_id.as_deref())
            .collect();
        self.entries.iter().all(|e| {
            e.source_id.as_deref().is_none_or(|s| !sources.contains(s))
                && e.target_id.as_deref().is_none_or(|t| !targets.contains(t))
        })
    }
}

/// Stops a page's assessment task when the run stops before awaiting it.
struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

/// Assesses source pages: situations, actions and planned work, reading the repository only.
#[derive(Clone)]
struct Assessor {
    inner: Arc<Inner>,
    mapping_index: usize,
    recon_id: String,
    correlate: bool,
    existing_targets: u64,
    /// The links in step, once read.
    in_step: Option<Arc<OnceLock<InStep>>>,
}

impl Assessor {
    #[allow(clippy::indexing_slicing)] // as in `Run::mapping`: found in this configuration at start
    fn mapping(&self) -> &Mapping {
        &self.inner.sync.mappings[self.mapping_index]
    }

    async fn assess(&self, records: Vec<Record>) -> Result<Assessed, ReconError> {
        let mapping = self.mapping();
        let pool = &self.inner.pool;
        let mut timings = Vec::new();
        let mut links_processed = 0;
        let sync_ctx = SyncContext::default();
        let n = records.len();

        let t = Instant::now();
        let digests: HashMap<String, [u8; 32]> = records
            .iter()
            .filter_map(|r| {
                let id = r.get("Id").and_then(Value::as_str)?;
                Some((id.to_owned(), mapping.source_digest(r)))
            })
            .collect();
        let mut entries = Vec::with_capacity(n);
        let mut seen = Vec::with_capacity(n);
        let mut seen_keys = Vec::new();
        // The page's look-ups by id probe the indexes (see `repo::begin_lookups`).
        let mut lookups = repo::begin_lookups(pool).await?;
        let records = self
            .skip_unchanged(
                &mut lookups,
                mapping,
                records,
                &digests,
                &mut entries,
                &mut seen,
                &mut seen_keys,
            )
            .await?;
        links_processed += entries.len() as u64;
        let ids: Vec<String> = records
            .iter()
            .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut links: HashMap<String, Link> = links::by_ids_keyed(
            &mut *lookups,
            mapping.link_type(),
            DEFAULT_LINK_QUALIFIER,
            Side::First,
            &ids,
        )
        .await?;
        let linked: Vec<String> = links.values().map(|l| l.second_id.clone()).collect();
        let mut targets: HashMap<String, StoredObject> =
            managed::by_ids(&mut *lookups, TARGET_TYPE, &linked)
                .await?
                .into_iter()
                .map(|o| (o.id.clone(), o))
                .collect();
        timings.push((Timed::LinkQuery, t.elapsed()));

        let mut pending = Vec::with_capacity(records.len());
        for record in records {
            let Some(id) = record.get("Id").and_then(Value::as_str).map(str::to_owned) else {
                let mut entry = Entry::new(Phase::Source);
                entry.error = Some("a source record without an Id".into());
                entries.push(entry);
                continue;
            };
            let source = Value::Object(record);
            let qualifies = mapping.source_qualifies(&source, &sync_ctx);
            let link = links.remove(&id);
            let target = link.as_ref().and_then(|l| targets.remove(&l.second_id));
            if link.is_some() {
                links_processed += 1;
            }
            let correlation = (link.is_none() && self.correlate && qualifies.is_ok())
                .then(|| mapping.correlate(&source, &sync_ctx))
                .and_then(Result::transpose);
            pending.push(Pending {
                id,
                source,
                qualifies,
                link,
                target,
                correlation,
            });
        }

        // Correlation: every filter of the page in a few statements, every id list in one.
        let t = Instant::now();
        let mut matches: HashMap<usize, Vec<StoredObject>> = HashMap::new();
        let filters: Vec<(usize, &Filter)> = pending
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match &p.correlation {
                Some(Ok(CorrelationRequest::Query(f))) => Some((i, f)),
                _ => None,
            })
            .collect();
        for chunk in filters.chunks(CORRELATION_CHUNK) {
            for (k, object) in recon_runs::correlate(pool, TARGET_TYPE, chunk).await? {
                matches.entry(k).or_default().push(object);
            }
        }
        let id_lists: Vec<(usize, &Vec<String>)> = pending
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match &p.correlation {
                Some(Ok(CorrelationRequest::Ids(ids))) => Some((i, ids)),
                _ => None,
            })
            .collect();
        let id_lists_empty = id_lists.is_empty();
        if !id_lists.is_empty() {
            let all: Vec<String> = id_lists
                .iter()
                .flat_map(|(_, ids)| ids.iter().cloned())
                .collect();
            let found: HashMap<String, StoredObject> =
                managed::by_ids(&mut *lookups, TARGET_TYPE, &all)
                    .await?
                    .into_iter()
                    .map(|o| (o.id.clone(), o))
                    .collect();
            for (i, ids) in id_lists {
                let list = matches.entry(i).or_default();
                for id in ids {
                    if let Some(o) = found.get(id) {
                        list.push(o.clone());
                    }
                }
            }
        }
        // Single matches already linked (to another source, since these sources are unlinked).
        let singles: Vec<String> = matches
            .values()
            .filter(|m| m.len() == 1)
            .flat_map(|m| m.iter().map(|o| o.id.clone()))
            .collect();
        let mut linked_elsewhere: HashSet<String> = if singles.is_empty() {
            HashSet::new()
        } else {
            links::by_ids(
                &mut *lookups,
                mapping.link_type(),
                DEFAULT_LINK_QUALIFIER,
                Side::Second,
                &singles,
            )
            .await?
            .into_iter()
            .map(|l| l.second_id)
            .collect()
        };
        let correlated = !filters.is_empty() || !id_lists_empty || !singles.is_empty();
        if !filters.is_empty() || !singles.is_empty() {
            timings.push((Timed::CorrelationQuery, t.elapsed()));
        }

        for (i, p) in pending.into_iter().enumerate() {
            let mut entry = Entry::new(Phase::Source);
            entry.source_digest = digests.get(&p.id).copied();
            entry.source_id = Some(p.id.clone());
            let qualifies = match p.qualifies {
                Ok(q) => q,
                Err(e) => {
                    entry.error = Some(e.to_string());
                    entry.source = Some(p.source);
                    entries.push(entry);
                    continue;
                }
            };
            let correlated = matches.remove(&i).unwrap_or_default();
            let correlation = match &p.correlation {
                None => Correlation::NotRun,
                Some(Err(e)) => {
                    entry.error = Some(e.to_string());
                    entries.push(entry);
                    continue;
                }
                Some(Ok(_)) => Correlation::Matches {
                    count: correlated.len(),
                    linked_to_another_source: correlated.len() == 1
                        && correlated
                            .first()
                            .is_some_and(|c| linked_elsewhere.contains(&c.id)),
                },
            };
            let link_state = match (&p.link, &p.target) {
                (None, _) => LinkState::Unlinked,
                (Some(_), Some(_)) => LinkState::LinkedTargetExists,
                (Some(_), None) => LinkState::LinkedTargetGone,
            };
            let situation = assess_source(SourceFacts {
                qualifies,
                link: link_state,
                correlation,
            });
            let target = match (p.target, correlated.len()) {
                (Some(t), _) => Some(t),
                (None, 1) => correlated.into_iter().next(),
                _ => None,
            };
            if let Some(t) = &target {
                seen.push(t.id.clone());
                entry.target_id = Some(t.id.clone());
            }
            entry.target = target.as_ref().map(StoredObject::to_value);
            entry.source = Some(p.source);
            decide_and_plan(
                mapping,
                &self.recon_id,
                &mut entry,
                situation,
                p.link.as_ref(),
                target.as_ref(),
            );
            // A target one source of this page takes may not be taken by another.
            if situation == Situation::Found
                && matches!(entry.action, Some(Action::Update | Action::Link))
            {
                if let Some(t) = &entry.target_id {
                    linked_elsewhere.insert(t.clone());
                }
            }
            entries.push(entry);
        }
        repo::commit(lookups).await?;
        Ok(Assessed {
            entries,
            seen,
            seen_keys,
            correlated,
            timings,
            links_processed,
            source_processed: n as u64,
        })
    }

    /// The unchanged fast path: records whose link holds their digest (recon saw exactly this
    /// record in step before) while the managed object is still at the snapshot's revision
    /// are CONFIRMED and unchanged without loading either body. Valid only where CONFIRMED's
    /// policy is a plain UPDATE (no condition, script or postAction to run per object).
    /// Returns the records that need the full assessment.
    #[allow(clippy::too_many_arguments)] // the page's three output lists, filled side by side
    async fn skip_unchanged(
        &self,
        lookups: &mut Tx,
        mapping: &Mapping,
        records: Vec<Record>,
        digests: &HashMap<String, [u8; 32]>,
        entries: &mut Vec<Entry>,
        seen: &mut Vec<String>,
        seen_keys: &mut Vec<u64>,
    ) -> Result<Vec<Record>, ReconError> {
        let Some(decision) = plain_confirmed_update(mapping) else {
            return Ok(records);
        };
        // A run that started with no managed objects has no link to find.
        if digests.is_empty() || self.existing_targets == 0 {
            return Ok(records);
        }
        if let Some(in_step) = self.in_step.as_ref().and_then(|l| l.get()) {
            let mut rest = Vec::with_capacity(records.len());
            for record in records {
                let id = record.get("Id").and_then(Value::as_str);
                let key = id.and_then(|id| {
                    let digest = digests.get(id)?;
                    in_step.target_key(id, digest)
                });
                let (Some(id), Some(key)) = (id, key) else {
                    rest.push(record);
                    continue;
                };
                // Known by its key only: the audit does not write unchanged entries when
                // `in_step` is read (see `Inbound::reads_in_step`).
                let mut entry = Entry::new(Phase::Source);
                entry.source_id = Some(id.to_owned());
                entry.situation = Some(Situation::Confirmed);
                entry.action = Some(decision.action);
                entry.policy = decision.policy.map(|p| p.index);
                entry.work = Work::Unchanged;
                seen_keys.push(key);
                entries.push(entry);
            }
            return Ok(rest);
        }
        // A long page is checked in two halves on two connections at once: the check is most
        // of an unchanged re-recon's time, and Postgres runs the halves side by side.
        let link_type = mapping.link_type();
        let sources: Vec<(&str, &[u8; 32])> =
            digests.iter().map(|(id, d)| (id.as_str(), d)).collect();
        let (first, second) = match sources.len() < SPLIT_CHECK_AT {
            true => (sources.as_slice(), &[][..]),
            false => sources.split_at(sources.len() / 2),
        };
        let mut unchanged: HashMap<String, String> = HashMap::with_capacity(sources.len());
        if second.is_empty() {
            unchanged.extend(unchanged_of(lookups, link_type, first).await?);
        } else {
            let mut other = repo::begin_lookups(&self.inner.pool).await?;
            let (a, b) = tokio::try_join!(
                unchanged_of(lookups, link_type, first),
                unchanged_of(&mut other, link_type, second),
            )?;
            repo::commit(other).await?;
            unchanged.extend(a);
            unchanged.extend(b);
        }
        if unchanged.is_empty() {
            return Ok(records);
        }
        let mut rest = Vec::with_capacity(records.len() - unchanged.len());
        for record in records {
            let id = record.get("Id").and_then(Value::as_str);
            let Some((source_id, target_id)) = id.and_then(|id| unchanged.get_key_value(id)) else {
                rest.push(record);
                continue;
            };
            let mut entry = Entry::new(Phase::Source);
            entry.source_id = Some(source_id.clone());
            entry.target_id = Some(target_id.clone());
            entry.situation = Some(Situation::Confirmed);
            entry.action = Some(decision.action);
            entry.policy = decision.policy.map(|p| p.index);
            entry.work = Work::Unchanged;
            seen.push(target_id.clone());
            entries.push(entry);
        }
        Ok(rest)
    }
}

/// Of `sources` (id, digest), the `(source, target)` pairs the unchanged fast path may skip.
async fn unchanged_of(
    lookups: &mut Tx,
    link_type: &str,
    sources: &[(&str, &[u8; 32])],
) -> Result<Vec<(String, String)>, RepoError> {
    links::unchanged_since_digest(
        &mut **lookups,
        link_type,
        DEFAULT_LINK_QUALIFIER,
        TARGET_TYPE,
        sources,
    )
    .await
}

/// Decides the action for the entry's situation and plans its work; a script error or an
/// impossible action fails this one entry.
pub(crate) fn decide_and_plan(
    mapping: &Mapping,
    recon_id: &str,
    entry: &mut Entry,
    situation: Situation,
    link: Option<&Link>,
    target: Option<&StoredObject>,
) {
    entry.situation = Some(situation);
    let scope = PolicyScope {
        source: entry.source.as_ref(),
        target: entry.target.as_ref(),
        link_qualifier: DEFAULT_LINK_QUALIFIER,
        source_phase: entry.phase == Phase::Source,
        recon_id: Some(recon_id),
    };
    let decision = match mapping.decide(situation, &scope) {
        Ok(d) => d,
        Err(e) => {
            entry.error = Some(e.to_string());
            return;
        }
    };
    entry.action = Some(decision.action);
    entry.policy = decision.policy.map(|p| p.index);
    let facts = Facts {
        situation,
        action: decision.action,
        source: entry.source.as_ref(),
        target: match entry.target.as_ref().and_then(Value::as_object) {
            Some(current) => Known::Current(current),
            None => Known::Nothing,
        },
        linked: link.is_some(),
    };
    match planner::plan(mapping, &facts) {
        Ok(write) => entry.work = work_of(write, link, target),
        Err(e) => entry.error = Some(e.to_string()),
    }
}

/// What a planned write means for managed objects and links.
fn work_of(write: Write, link: Option<&Link>, target: Option<&StoredObject>) -> Work {
    match (write, target, link) {
        (Write::Create(body), ..) => Work::Create {
            body,
            link_id: link.map(|l| l.id.clone()),
        },
        (Write::Update(changes), Some(t), _) => Work::Update {
            target_id: t.id.clone(),
            changes,
            current: t.body.clone(),
            link: match link {
                Some(l) => LinkPlan::Existing {
                    id: l.id.clone(),
                    snapshot: l.synced_snapshot.clone(),
                    digest: l.source_digest.clone(),
                },
                None => LinkPlan::New,
            },
        },
        (Write::Delete, Some(t), _) => Work::Delete {
            target_id: t.id.clone(),
        },
        (Write::Link, Some(t), _) => Work::Link {
            target_id: t.id.clone(),
        },
        (Write::DropLink | Write::Unlink, _, Some(l)) => Work::Unlink {
            link_id: l.id.clone(),
        },
        (Write::Nothing | Write::Exception, ..) => Work::Nothing,
        // The planner refuses an action without the target or link it needs.
        _ => Work::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(source: &str, target: Option<&str>, work: Work) -> Entry {
        let mut e = Entry::new(Phase::Source);
        e.source_id = Some(source.into());
        e.target_id = target.map(str::to_owned);
        e.work = work;
        e
    }

    fn page(entries: Vec<Entry>, correlated: bool) -> Assessed {
        Assessed {
            entries,
            seen: Vec::new(),
            seen_keys: Vec::new(),
            correlated,
            timings: Vec::new(),
            links_processed: 0,
            source_processed: 0,
        }
    }

    fn link(target: &str) -> Work {
        Work::Link {
            target_id: target.into(),
        }
    }

    #[test]
    fn an_assessment_ahead_holds_unless_the_page_before_could_change_it() {
        let quiet = page(vec![entry("s1", Some("t1"), Work::Unchanged)], false);
        let writing = page(vec![entry("s1", Some("t1"), link("t1"))], false);
        let disjoint = page(vec![entry("s2", Some("t2"), link("t2"))], false);
        assert!(disjoint.still_valid_after(&quiet));
        assert!(disjoint.still_valid_after(&writing));
        // The page before wrote: a correlating page, a shared source or target is assessed again.
        let correlated = page(vec![entry("s2", None, Work::Nothing)], true);
        assert!(correlated.still_valid_after(&quiet));
        assert!(!correlated.still_valid_after(&writing));
        let same_target = page(vec![entry("s2", Some("t1"), Work::Unchanged)], false);
        assert!(!same_target.still_valid_after(&writing));
        let same_source = page(vec![entry("s1", None, Work::Nothing)], false);
        assert!(!same_source.still_valid_after(&writing));
    }
}
