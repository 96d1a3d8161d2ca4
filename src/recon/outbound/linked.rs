//! Pass 1: the Salesforce users of the target query, a page at a time, and the managed users
//! linked to them.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::Stream;
use serde_json::Value;

use super::{Entry, Outbound, Via, Work, drift};
use crate::mapping::{
    Action, DEFAULT_LINK_QUALIFIER, Mapping, PolicyScope, Situation, SyncContext,
};
use crate::planner::{self, Facts, Known, Write};
use crate::recon::ReconError;
use crate::recon::audited::Phase;
use crate::recon::run_state::Flow;
use crate::recon::summary::Timed;
use crate::recon::user_pages::UserPages;
use crate::repo::links::{self, Link, Side};
use crate::repo::managed::{self, StoredObject};
use crate::repo::recon_runs::{self, Unlinked};
use crate::repo::{self};
use crate::salesforce::{QueryPage, Record, SalesforceError};

impl Outbound {
    /// While a page is assessed and written, the next one is fetched: at most two pages are
    /// held.
    pub(super) async fn linked_pass(&mut self) -> Result<Flow, ReconError> {
        let client = self.run.client.clone();
        let batch = self.run.inner.settings.source_batch_size;
        let soql = self.soql.clone();
        let stream = std::pin::pin!(client.query_with_batch_size(&soql.text, batch));
        let read_state = std::mem::take(&mut self.read_state);
        let mut pages = UserPages::new(stream, client.clone(), soql, batch, read_state);
        let flow = self.linked_pages(&mut pages).await;
        self.read_state = pages.into_read_state();
        flow
    }

    async fn linked_pages(
        &mut self,
        pages: &mut UserPages<impl Stream<Item = Result<QueryPage, SalesforceError>> + Unpin>,
    ) -> Result<Flow, ReconError> {
        let mut fetch = async || pages.next().await;
        let (mut next, took) = fetch().await;
        self.run.stats.time(Timed::TargetQuery, took);
        while let Some(page) = next? {
            self.existing_targets = page.total_size;
            self.run.stats.target_total = Some(page.total_size);
            let (flow, (fetched, took)) =
                tokio::join!(self.linked_page_written(page.records), fetch());
            self.run.stats.time(Timed::TargetQuery, took);
            if flow? == Flow::Cancel {
                return Ok(Flow::Cancel);
            }
            next = fetched;
        }
        Ok(Flow::Go)
    }

    /// Assesses and writes one page, then checkpoints.
    async fn linked_page_written(&mut self, records: Vec<Record>) -> Result<Flow, ReconError> {
        let (entries, seen) = self.linked_page(records).await?;
        self.write(entries, &seen).await?;
        self.run.checkpoint().await
    }

    /// Assesses one page of Salesforce users; returns the entries and the managed users met
    /// that did not fit in memory (for `recon_seen`).
    async fn linked_page(
        &mut self,
        records: Vec<Record>,
    ) -> Result<(Vec<Entry>, Vec<String>), ReconError> {
        let inner = self.run.inner.clone();
        let mapping = self.run.mapping_of(&inner);
        let t = Instant::now();
        let ids: Vec<String> = records.iter().filter_map(record_id).collect();
        let mut lookups = repo::begin_lookups(&inner.pool).await?;
        let mut links: HashMap<String, Link> = links::by_ids_keyed(
            &mut *lookups,
            mapping.link_type(),
            DEFAULT_LINK_QUALIFIER,
            Side::First,
            &ids,
        )
        .await?;
        let linked: Vec<String> = links.values().map(|l| l.second_id.clone()).collect();
        let users: HashMap<String, StoredObject> =
            managed::by_ids(&mut *lookups, &self.source_type, &linked)
                .await?
                .into_iter()
                .map(|o| (o.id.clone(), o))
                .collect();
        repo::commit(lookups).await?;
        self.run.stats.time(Timed::LinkQuery, t.elapsed());

        let ctx = SyncContext::default();
        let mut entries = Vec::with_capacity(records.len());
        let mut met = Vec::with_capacity(records.len());
        let mut unlinked = Vec::new();
        for record in records {
            let Some(id) = record_id(&record) else {
                continue;
            };
            self.run.stats.target_processed += 1;
            let Some(link) = links.remove(&id) else {
                let target = Value::Object(record);
                let qualifies = mapping
                    .target_qualifies(&target, &ctx)
                    .map_err(|e| e.to_string());
                unlinked.push((id, qualifies));
                continue;
            };
            self.run.stats.links_processed += 1;
            match users.get(&link.second_id) {
                Some(user) => {
                    let source = user.to_value();
                    // A user outside the source query is not this run's to reconcile.
                    if !self.source_filter.matches(&source) {
                        continue;
                    }
                    met.push(user.id.clone());
                    self.run.stats.source_processed += 1;
                    let decider = Decider {
                        mapping,
                        recon_id: &self.run.id,
                        analyze: self.run.req.analyze,
                    };
                    entries.push(assess_linked(&decider, user, &source, &link, &record));
                }
                None => {
                    let decider = Decider {
                        mapping,
                        recon_id: &self.run.id,
                        analyze: self.run.req.analyze,
                    };
                    entries.push(source_missing(&decider, &link, &record))
                }
            }
        }
        self.keep_unlinked(unlinked).await?;
        let spilled = if self.seen.remember(&met) {
            Vec::new()
        } else {
            met
        };
        Ok((entries, spilled))
    }
}

impl Outbound {
    /// Keeps a page's unlinked Salesforce users for the target phase: in memory while they
    /// fit, in `recon_unlinked` from then on.
    async fn keep_unlinked(&mut self, page: Vec<Unlinked>) -> Result<(), ReconError> {
        let cap = self.run.inner.settings.unlinked_in_memory;
        if !self.unlinked_spilled && self.unlinked.len() + page.len() <= cap {
            self.unlinked.extend(page);
            return Ok(());
        }
        self.unlinked_spilled = true;
        recon_runs::add_unlinked(self.run.pool(), &self.run.id, &page).await?;
        Ok(())
    }
}

pub(super) fn record_id(record: &Record) -> Option<String> {
    record.get("Id").and_then(Value::as_str).map(str::to_owned)
}

/// A managed user and the Salesforce user linked to it, as just read: CONFIRMED (queued when
/// the mapped values differ from Salesforce's) or UNQUALIFIED.
pub(super) fn assess_linked(
    d: &Decider<'_>,
    user: &StoredObject,
    source: &Value,
    link: &Link,
    record: &Record,
) -> Entry {
    let mapping = d.mapping;
    let mut entry = Entry::new(
        Phase::Source,
        Some(user.id.clone()),
        Some(link.first_id.clone()),
    );
    let ctx = SyncContext::default();
    let qualifies = match mapping.source_qualifies(source, &ctx) {
        Ok(q) => q,
        Err(e) => {
            entry.error = Some(e.to_string());
            return entry;
        }
    };
    let situation = if qualifies {
        Situation::Confirmed
    } else {
        Situation::Unqualified
    };
    let target = Value::Object(record.clone());
    let Some(action) = decide(d, &mut entry, situation, Some(source), Some(&target)) else {
        return entry;
    };
    let facts = Facts {
        situation,
        action,
        source: Some(source),
        target: Known::InStepWith {
            id: &link.first_id,
            snapshot: None,
        },
        linked: true,
    };
    entry.work = match planner::plan(mapping, &facts) {
        Ok(Write::Update(mapped)) => {
            let fields = drift(&mapped, record);
            if fields.is_empty() {
                Work::InStep
            } else {
                Work::Queue {
                    rev: user.rev,
                    fields,
                }
            }
        }
        Ok(Write::Delete) => Work::Hold(Via::Worker {
            user: user.id.clone(),
            rev: user.rev,
        }),
        Ok(Write::Nothing | Write::Exception) => Work::Nothing,
        // CREATE, LINK, UNLINK: the worker plans and makes them from the current user.
        Ok(_) => Work::Queue {
            rev: user.rev,
            fields: Vec::new(),
        },
        Err(e) => {
            entry.error = Some(e.to_string());
            Work::Nothing
        }
    };
    entry
}

/// A Salesforce user whose linked managed user is gone: SOURCE_MISSING.
pub(super) fn source_missing(d: &Decider<'_>, link: &Link, record: &Record) -> Entry {
    let mut entry = Entry::new(
        Phase::Target,
        Some(link.second_id.clone()),
        Some(link.first_id.clone()),
    );
    let target = Value::Object(record.clone());
    let situation = Situation::SourceMissing;
    let Some(action) = decide(d, &mut entry, situation, None, Some(&target)) else {
        return entry;
    };
    entry.work = match action {
        // The worker, finding the user gone and the link there, deactivates and unlinks.
        Action::Delete | Action::Unlink => Work::Hold(Via::Worker {
            user: link.second_id.clone(),
            rev: link.synced_rev.unwrap_or(0),
        }),
        _ => Work::Nothing,
    };
    entry
}

/// What deciding an entry's action needs: the mapping, the run, whether it only analyzes.
pub(super) struct Decider<'a> {
    pub mapping: &'a Mapping,
    pub recon_id: &'a str,
    pub analyze: bool,
}

/// The mapping's action for `situation`, recorded on the entry, and its policy's `postAction`
/// run (not in analyze mode; for a queued write, once it is queued: the worker makes it
/// later). `None` when a policy's script failed (recorded as the entry's error).
pub(super) fn decide(
    d: &Decider<'_>,
    entry: &mut Entry,
    situation: Situation,
    source: Option<&Value>,
    target: Option<&Value>,
) -> Option<Action> {
    entry.situation = Some(situation);
    let scope = PolicyScope {
        source,
        target,
        link_qualifier: DEFAULT_LINK_QUALIFIER,
        source_phase: entry.phase == Phase::Source,
        recon_id: Some(d.recon_id),
    };
    let decision = match d.mapping.decide(situation, &scope) {
        Ok(decision) => decision,
        Err(e) => {
            entry.error = Some(e.to_string());
            return None;
        }
    };
    entry.action = Some(decision.action);
    if !d.analyze
        && let Err(e) = decision.run_post_action(d.mapping, &scope)
    {
        entry.error = Some(e.to_string());
    }
    Some(decision.action)
}
