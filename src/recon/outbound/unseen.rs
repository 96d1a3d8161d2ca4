//! Pass 2: the managed users pass 1 did not meet, a keyset page at a time. A linked one's
//! Salesforce user was outside the stream: it is read back by id (200 per call) and assessed
//! as in pass 1, or it is gone (MISSING). An unlinked one is correlated, a page's users in a
//! few SOQL queries (ABSENT, FOUND, FOUND_ALREADY_LINKED, AMBIGUOUS), or SOURCE_IGNORED.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Map, Value};

use super::linked::{Decider, assess_linked, decide};
use super::{Entry, Outbound, Work, target_fields};
use crate::mapping::{
    Action, Correlation, DEFAULT_LINK_QUALIFIER, LinkState, SourceFacts, SyncContext, assess_source,
};
use crate::outbound::correlation;
use crate::recon::ReconError;
use crate::recon::audited::Phase;
use crate::recon::run_state::{Flow, NothingLinked};
use crate::recon::summary::Timed;
use crate::repo::links::{self, Link, Side};
use crate::repo::managed::{self, StoredObject};
use crate::repo::{self, recon_runs};
use crate::salesforce::Record;

/// Keyset pages' worth of ids read per query.
const IDS_PER_PAGE: i64 = 10;

impl Outbound {
    pub(super) async fn unseen_pass(&mut self) -> Result<Flow, ReconError> {
        let inner = self.run.inner.clone();
        let page_size = inner.settings.target_page_size;
        let ids_per_query = page_size.saturating_mul(IDS_PER_PAGE);
        let size = usize::try_from(page_size).unwrap_or(1).max(1);
        let mut after: Option<String> = None;
        let mut unseen: Vec<String> = Vec::new();
        loop {
            let t = Instant::now();
            let ids = recon_runs::target_ids(
                &inner.pool,
                &self.run.id,
                &self.source_type,
                &self.source_filter,
                after.as_deref(),
                ids_per_query,
                self.seen.spilled(),
            )
            .await?;
            let last_batch = (ids.len() as i64) < ids_per_query;
            after = ids.last().cloned().or(after);
            unseen.extend(ids.into_iter().filter(|id| !self.seen.contains(id)));
            self.run.stats.time(Timed::SourceQuery, t.elapsed());
            while unseen.len() >= size || (last_batch && !unseen.is_empty()) {
                let rest = unseen.split_off(size.min(unseen.len()));
                let chunk = std::mem::replace(&mut unseen, rest);
                let users = managed::by_ids(&inner.pool, &self.source_type, &chunk).await?;
                let entries = self.unseen_page(&users).await?;
                self.write(entries, &[]).await?;
                if self.run.checkpoint().await? == Flow::Cancel {
                    return Ok(Flow::Cancel);
                }
            }
            if last_batch {
                break;
            }
        }
        Ok(Flow::Go)
    }

    /// `reconById` of one managed user: assessed as pass 2 would, or, when it is gone, its
    /// link as SOURCE_MISSING. `Err` when there is neither.
    pub(super) async fn one_user(
        &mut self,
        id: &str,
    ) -> Result<Result<(), NothingLinked>, ReconError> {
        let inner = self.run.inner.clone();
        let mapping = self.run.mapping_of(&inner);
        let ids = [id.to_owned()];
        let users = managed::by_ids(&inner.pool, &self.source_type, &ids).await?;
        if !users.is_empty() {
            self.correlate = mapping.has_correlation();
            let entries = self.unseen_page(&users).await?;
            return self.write(entries, &[]).await.map(Ok);
        }
        let link = links::by_ids(
            &inner.pool,
            mapping.link_type(),
            DEFAULT_LINK_QUALIFIER,
            Side::Second,
            &ids,
        )
        .await?;
        let Some(link) = link.into_iter().next() else {
            return Ok(Err(NothingLinked {
                resource: mapping.source.clone(),
                id: id.to_owned(),
                other_side: "Salesforce user",
            }));
        };
        let found = self.read_back(std::slice::from_ref(&link.first_id)).await?;
        match found.get(&link.first_id) {
            Some(record) => {
                let decider = Decider {
                    mapping,
                    recon_id: &self.run.id,
                    analyze: self.run.req.analyze,
                };
                let entry = super::linked::source_missing(&decider, &link, record);
                self.write(vec![entry], &[]).await?;
            }
            // Neither side exists any more: ALL_GONE, which only the link remembers.
            None => self.run.stats.situation(crate::mapping::Situation::AllGone),
        }
        Ok(Ok(()))
    }

    async fn unseen_page(&mut self, users: &[StoredObject]) -> Result<Vec<Entry>, ReconError> {
        let inner = self.run.inner.clone();
        let mapping = self.run.mapping_of(&inner);
        let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
        let t = Instant::now();
        let mut lookups = repo::begin_lookups(&inner.pool).await?;
        let links: HashMap<String, Link> = links::by_ids_keyed(
            &mut *lookups,
            mapping.link_type(),
            DEFAULT_LINK_QUALIFIER,
            Side::Second,
            &ids,
        )
        .await?;
        repo::commit(lookups).await?;
        self.run.stats.time(Timed::LinkQuery, t.elapsed());
        let linked_targets: Vec<String> = links.values().map(|l| l.first_id.clone()).collect();
        let targets = self.read_back(&linked_targets).await?;

        let ctx = SyncContext::default();
        let recon_id = self.run.id.clone();
        let decider = Decider {
            mapping,
            recon_id: &recon_id,
            analyze: self.run.req.analyze,
        };
        let sources: Vec<Value> = users.iter().map(StoredObject::to_value).collect();
        let mut qualifies = Vec::with_capacity(users.len());
        let mut to_correlate: Vec<(&str, &Map<String, Value>)> = Vec::new();
        for (user, source) in users.iter().zip(&sources) {
            let q = mapping.source_qualifies(source, &ctx);
            if !links.contains_key(&user.id) && matches!(q, Ok(true)) && self.correlate {
                to_correlate.push((user.id.as_str(), &user.body));
            }
            qualifies.push(q);
        }
        let t = Instant::now();
        let mut matches = correlation::correlate(&self.run.client, mapping, &to_correlate).await?;
        correlation::mark_linked_elsewhere(&inner.pool, mapping.link_type(), &mut matches).await?;
        if !to_correlate.is_empty() {
            self.run.stats.time(Timed::CorrelationQuery, t.elapsed());
        }

        let mut entries = Vec::with_capacity(users.len());
        for ((user, source), qualifies) in users.iter().zip(&sources).zip(qualifies) {
            self.run.stats.source_processed += 1;
            if let Some(link) = links.get(&user.id) {
                self.run.stats.links_processed += 1;
                entries.push(match targets.get(&link.first_id) {
                    Some(record) => assess_linked(&decider, user, source, link, record),
                    None => missing(&decider, user, source, link),
                });
                continue;
            }
            let mut entry = Entry::new(Phase::Source, Some(user.id.clone()), None);
            let qualifies = match qualifies {
                Ok(q) => q,
                Err(e) => {
                    entry.error = Some(e.to_string());
                    entries.push(entry);
                    continue;
                }
            };
            let found = matches.get(&user.id);
            let correlation = match found {
                Some(m) => Correlation::Matches {
                    count: m.ids.len(),
                    linked_to_another_source: m.linked_elsewhere,
                },
                None => Correlation::NotRun,
            };
            let situation = assess_source(SourceFacts {
                qualifies,
                link: LinkState::Unlinked,
                correlation,
            });
            let single = found.and_then(|m| match m.ids.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            });
            entry.target_id = single.clone();
            let Some(action) = decide(&decider, &mut entry, situation, Some(source), None) else {
                entries.push(entry);
                continue;
            };
            if action.changes_data() {
                // The worker correlates again and creates, links or updates from the current user.
                if let Some(target) = single.filter(|_| action != Action::Unlink) {
                    self.claimed.insert(target);
                }
                entry.work = Work::Queue {
                    rev: user.rev,
                    fields: Vec::new(),
                };
            } else if let Some(target) = single {
                // Matched, so not the target phase's to report as UNASSIGNED.
                self.claimed.insert(target);
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The Salesforce users of `ids` that exist, with the mapped fields, 200 ids per query.
    async fn read_back(&mut self, ids: &[String]) -> Result<HashMap<String, Record>, ReconError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let inner = self.run.inner.clone();
        let mapping = self.run.mapping_of(&inner);
        let object = mapping.target.rsplit('/').next().unwrap_or("User");
        let t = Instant::now();
        let found = self
            .run
            .client
            .records_by_id_with_access(
                object,
                &target_fields(mapping, None),
                ids,
                self.soql.access,
                &mut self.read_state,
            )
            .await?;
        self.run.stats.time(Timed::TargetQuery, t.elapsed());
        Ok(found)
    }
}

/// A linked user whose Salesforce user is gone: MISSING.
fn missing(d: &Decider<'_>, user: &StoredObject, source: &Value, link: &Link) -> Entry {
    let mut entry = Entry::new(
        Phase::Source,
        Some(user.id.clone()),
        Some(link.first_id.clone()),
    );
    let situation = crate::mapping::Situation::Missing;
    let Some(action) = decide(d, &mut entry, situation, Some(source), None) else {
        return entry;
    };
    entry.work = match action {
        Action::Create => Work::Relink {
            link_id: link.id.clone(),
            rev: user.rev,
        },
        // The target is gone already: only the link is left to remove.
        Action::Unlink | Action::Delete => Work::Unlink {
            link_id: link.id.clone(),
        },
        _ => Work::Nothing,
    };
    entry
}
