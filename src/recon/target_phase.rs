//! The target phase: managed users the source phase did not touch, a keyset page of ids at a
//! time, only the untouched ones loaded (see `seen.rs` for how touched ones are known).
//!
//! A linked target was not touched when its source was not in the source query's result:
//! the source may still exist outside a restricted `sourceQuery`, so the linked sources of a
//! page are read back from Salesforce, 200 ids per query (one API call, not one per user),
//! to tell SOURCE_MISSING from UNQUALIFIED or CONFIRMED.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;

use super::apply::Entry;
use super::audited::Phase;
use super::inbound::Inbound;
use super::run_state::{Flow, NothingLinked};
use super::source_phase::decide_and_plan;
use super::summary::Timed;
use super::{ReconError, SOURCE_OBJECT_TYPE, TARGET_TYPE, soql};
use crate::mapping::{DEFAULT_LINK_QUALIFIER, LinkedSource, SyncContext, assess_target};
use crate::repo::links::{self, Link, Side};
use crate::repo::managed::StoredObject;
use crate::repo::{self, managed, recon_runs};
use crate::salesforce::Record;

/// Target pages' worth of ids read per query.
const IDS_PER_TARGET_PAGE: i64 = 10;

impl Inbound {
    pub(crate) async fn target_phase(&mut self) -> Result<Flow, ReconError> {
        let inner = self.run.inner.clone();
        let page_size = inner.settings.target_page_size;
        // Ids are light: read many per query, load and assess the untouched ones a page at a time.
        let ids_per_query = page_size.saturating_mul(IDS_PER_TARGET_PAGE);
        let mut after: Option<String> = None;
        let mut untouched: Vec<String> = Vec::new();
        loop {
            let t = Instant::now();
            let ids = recon_runs::target_ids(
                &inner.pool,
                &self.run.id,
                TARGET_TYPE,
                &self.target_filter,
                after.as_deref(),
                ids_per_query,
                self.seen.spilled(),
            )
            .await?;
            let last_batch = (ids.len() as i64) < ids_per_query;
            after = ids.last().cloned().or(after);
            untouched.extend(ids.into_iter().filter(|id| !self.seen.contains(id)));
            self.run.stats.time(Timed::TargetQuery, t.elapsed());
            let size = usize::try_from(page_size).unwrap_or(1).max(1);
            while untouched.len() >= size || (last_batch && !untouched.is_empty()) {
                let rest = untouched.split_off(size.min(untouched.len()));
                let chunk = std::mem::replace(&mut untouched, rest);
                let t = Instant::now();
                // Probes by id (see `repo::begin_lookups`).
                let mut lookups = repo::begin_lookups(&inner.pool).await?;
                let page = managed::by_ids(&mut *lookups, TARGET_TYPE, &chunk).await?;
                repo::commit(lookups).await?;
                self.run.stats.time(Timed::TargetQuery, t.elapsed());
                self.target_page(&page).await?;
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

    /// Assesses and applies one page of targets the source phase did not touch.
    async fn target_page(&mut self, page: &[StoredObject]) -> Result<(), ReconError> {
        let inner = self.run.inner.clone();
        let mapping = self.run.mapping_of(&inner);
        let sync_ctx = SyncContext::default();
        let ids: Vec<String> = page.iter().map(|o| o.id.clone()).collect();
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
        let sources = self
            .linked_sources(links.values().map(|l| l.first_id.clone()).collect())
            .await?;

        let mut entries = Vec::with_capacity(page.len());
        for object in page {
            let mut entry = Entry::new(Phase::Target);
            entry.target_id = Some(object.id.clone());
            let target = object.to_value();
            let link = links.get(&object.id);
            if let Some(l) = link {
                entry.source_id = Some(l.first_id.clone());
            }
            let source = link.and_then(|l| sources.get(&l.first_id));
            entry.source = source.map(|r| Value::Object(r.clone()));
            entry.target = Some(target);
            let qualifies = entry
                .target
                .as_ref()
                .map(|t| mapping.target_qualifies(t, &sync_ctx))
                .unwrap_or(Ok(true));
            let target_qualifies = match qualifies {
                Ok(q) => q,
                Err(e) => {
                    entry.error = Some(e.to_string());
                    entries.push(entry);
                    continue;
                }
            };
            let linked_source = match (link, &entry.source) {
                (None, _) => LinkedSource::Unlinked,
                (Some(_), None) => LinkedSource::Gone,
                (Some(_), Some(s)) => match mapping.source_qualifies(s, &sync_ctx) {
                    Ok(q) => LinkedSource::Exists { qualifies: q },
                    Err(e) => {
                        entry.error = Some(e.to_string());
                        entries.push(entry);
                        continue;
                    }
                },
            };
            let situation = assess_target(target_qualifies, linked_source);
            decide_and_plan(
                mapping,
                &self.run.id,
                &mut entry,
                situation,
                link,
                Some(object),
            );
            entries.push(entry);
        }
        self.run.stats.target_processed += page.len() as u64;
        self.apply_page(&entries, &[], false).await
    }

    /// `reconById` of a Salesforce id the source query no longer returns: its linked managed
    /// user is assessed as the target phase would (SOURCE_MISSING, and the mapping's policy
    /// for it). `Err` when there is nothing linked to assess.
    pub(crate) async fn vanished_source(
        &mut self,
        source_id: &str,
    ) -> Result<Result<(), NothingLinked>, ReconError> {
        let inner = self.run.inner.clone();
        let mapping = self.run.mapping_of(&inner);
        let link = links::by_first_id(
            &inner.pool,
            mapping.link_type(),
            DEFAULT_LINK_QUALIFIER,
            source_id,
        )
        .await?;
        let Some(link) = link else {
            return Ok(Err(NothingLinked {
                resource: mapping.source.clone(),
                id: source_id.to_owned(),
                other_side: "managed object",
            }));
        };
        let page = managed::by_ids(
            &inner.pool,
            TARGET_TYPE,
            std::slice::from_ref(&link.second_id),
        )
        .await?;
        if page.is_empty() {
            // Neither side exists any more: ALL_GONE, which only the link remembers.
            self.run.stats.situation(crate::mapping::Situation::AllGone);
            return Ok(Ok(()));
        }
        self.run.stats.target_processed += page.len() as u64;
        self.target_page(&page).await?;
        Ok(Ok(()))
    }

    /// The linked sources that still exist, read back by id (200 per query).
    async fn linked_sources(
        &mut self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Record>, ReconError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let inner = self.run.inner.clone();
        let mapping = self.run.mapping_of(&inner);
        let fields = soql::fields(
            mapping,
            self.run
                .req
                .source_query
                .as_ref()
                .or(mapping.source_query.as_ref()),
        );
        let t = Instant::now();
        let found = self
            .run
            .client
            .records_by_id_with_access(
                SOURCE_OBJECT_TYPE,
                &fields,
                &ids,
                self.soql.access,
                &mut self.read_state,
            )
            .await?;
        self.run.stats.time(Timed::SourceQuery, t.elapsed());
        Ok(found)
    }
}
