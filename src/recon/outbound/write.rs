//! An outbound page's writes: `sync` rows in the outbox for the users that need a write,
//! the links that go, the counters and the audit rows, in one transaction; and, once the guard
//! allowed them, the held deactivations.

use std::time::Instant;

use serde_json::{Map, Value};

use super::Outbound;
use crate::mapping::{Action, Situation};
use crate::recon::ReconError;
use crate::recon::audited::{Audited, Phase};
use crate::recon::summary::Timed;
use crate::repo::audit::{self, ReconAuditEntry};
use crate::repo::{self, links, outbox, recon_runs};

/// Deactivations applied per transaction or Salesforce call.
const HELD_BATCH: usize = 200;

/// One assessed object and what to do about it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub phase: Phase,
    /// The managed user.
    pub source_id: Option<String>,
    /// The Salesforce user.
    pub target_id: Option<String>,
    pub situation: Option<Situation>,
    pub action: Option<Action>,
    pub work: Work,
    /// The assessment failed (a script error): nothing to apply.
    pub error: Option<String>,
}

impl Entry {
    pub fn new(phase: Phase, source_id: Option<String>, target_id: Option<String>) -> Entry {
        Entry {
            phase,
            source_id,
            target_id,
            situation: None,
            action: None,
            work: Work::Nothing,
            error: None,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Work {
    Nothing,
    /// The mapped values are what Salesforce holds.
    InStep,
    /// A `sync` row for the managed user at `rev`; `fields` are the target fields found to
    /// differ (the worker pushes them beside the delta since the snapshot; none: everything).
    Queue {
        rev: i64,
        fields: Vec<String>,
    },
    /// The linked Salesforce user is gone: the link goes, then a `sync` row (the worker then
    /// sees an unlinked user and creates or correlates).
    Relink {
        link_id: String,
        rev: i64,
    },
    /// Only the link goes (its Salesforce user is gone).
    Unlink {
        link_id: String,
    },
    /// A deactivation, held until the guard has counted them all.
    Hold(Via),
}

/// How a held deactivation is made.
#[derive(Debug, Clone)]
pub(crate) enum Via {
    /// A `sync` row: the worker deactivates the user's Salesforce user and drops the link.
    Worker { user: String, rev: i64 },
    /// Here: a Salesforce user nothing links to, so no worker owns it.
    Direct { target: String },
}

/// A held deactivation and whom it is about.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    phase: Phase,
    source_id: Option<String>,
    target_id: Option<String>,
    situation: Option<Situation>,
    via: Via,
}

impl Outbound {
    /// Writes (or, in analyze mode, only audits) a page's entries. `seen`: managed users
    /// this page met that the memory cap sends to `recon_seen`.
    pub(super) async fn write(
        &mut self,
        entries: Vec<Entry>,
        seen: &[String],
    ) -> Result<(), ReconError> {
        let t = Instant::now();
        let analyze = self.run.req.analyze;
        let mut queue: Vec<(String, i64, Vec<String>)> = Vec::new();
        let mut unlink: Vec<String> = Vec::new();
        let mut rows: Vec<ReconAuditEntry> = Vec::new();
        for entry in entries {
            if let Some(s) = entry.situation {
                self.run.stats.situation(s);
            }
            let failed = entry.error.is_some() || entry.action == Some(Action::Exception);
            let mut message = entry.error.clone().or_else(|| {
                (entry.action == Some(Action::Exception)).then(|| {
                    format!(
                        "Situation {}: the mapping's policy for it is EXCEPTION",
                        entry.situation.map_or("?", Situation::as_str)
                    )
                })
            });
            let mut unchanged = false;
            match (&entry.work, failed) {
                (_, true) | (Work::Nothing, _) => {}
                (Work::InStep, _) => {
                    self.run.stats.unchanged += 1;
                    unchanged = true;
                    message = Some("target unchanged".into());
                }
                (Work::Queue { rev, fields }, _) => {
                    if let Some(user) = &entry.source_id {
                        queue.push((user.clone(), *rev, fields.clone()));
                    }
                    self.count_queued(entry.situation);
                    if !fields.is_empty() {
                        message = Some(format!(
                            "queued for the outbound worker; differs in Salesforce: {}",
                            fields.join(", ")
                        ));
                    }
                }
                (Work::Relink { link_id, rev }, _) => {
                    if let Some(user) = &entry.source_id {
                        unlink.push(link_id.clone());
                        queue.push((user.clone(), *rev, Vec::new()));
                    }
                    self.count_queued(entry.situation);
                }
                (Work::Unlink { link_id }, _) => unlink.push(link_id.clone()),
                (Work::Hold(via), _) => {
                    if !analyze {
                        // Counted and audited when applied (or not, if the guard stops it).
                        self.held.push(Held {
                            phase: entry.phase,
                            source_id: entry.source_id.clone(),
                            target_id: entry.target_id.clone(),
                            situation: entry.situation,
                            via: via.clone(),
                        });
                        continue;
                    }
                    self.run.stats.deleted += 1;
                }
            }
            if failed {
                self.run.stats.failure += 1;
            } else {
                self.run.stats.success += 1;
            }
            if analyze && !failed {
                message = Some("analyze: assessed only, nothing was written".into());
            }
            let quiet = matches!(
                entry.action,
                Some(Action::Ignore | Action::NoReport | Action::Async)
            );
            if quiet && !failed {
                continue;
            }
            let about = Audited {
                phase: entry.phase,
                source_id: entry.source_id.as_deref(),
                target_id: entry.target_id.as_deref(),
                situation: entry.situation,
                action: entry.action,
                status: if failed { "FAILURE" } else { "SUCCESS" },
                unchanged,
            };
            self.audit(&about, message, &mut rows);
        }
        let pool = self.run.pool().clone();
        if analyze || (queue.is_empty() && unlink.is_empty() && seen.is_empty()) {
            audit::insert_batch(&pool, &self.run.id, &rows).await?;
        } else {
            let mut tx = repo::begin(&pool).await?;
            links::delete_many(&mut tx, &unlink).await?;
            self.enqueue(&mut tx, &queue).await?;
            recon_runs::mark_seen(&mut tx, &self.run.id, seen).await?;
            audit::insert_batch(&mut *tx, &self.run.id, &rows).await?;
            repo::commit(tx).await?;
        }
        self.run.stats.time(Timed::Apply, t.elapsed());
        Ok(())
    }

    /// Queues `sync` rows (user, revision, drifted fields) for this mapping's lane alone.
    async fn enqueue(
        &self,
        tx: &mut repo::Conn,
        queue: &[(String, i64, Vec<String>)],
    ) -> Result<u64, ReconError> {
        let mapping = Some(self.run.mapping().name.as_str());
        Ok(outbox::enqueue_sync_many(tx, &self.source_type, queue, mapping).await?)
    }

    fn count_queued(&mut self, situation: Option<Situation>) {
        match situation {
            Some(Situation::Absent | Situation::Missing) => self.run.stats.created += 1,
            Some(Situation::Found) => {
                self.run.stats.updated += 1;
                self.run.stats.links_created += 1;
            }
            _ => self.run.stats.updated += 1,
        }
    }

    fn audit(
        &mut self,
        about: &Audited<'_>,
        message: Option<String>,
        rows: &mut Vec<ReconAuditEntry>,
    ) {
        if self.run.admits(about) {
            self.run.stats.audit_written += 1;
            rows.push(self.run.audit_entry(about, message));
        } else {
            self.run.stats.audit_filtered += 1;
        }
    }

    /// Applies the held deactivations once the guard allowed them: the linked ones as `sync`
    /// rows, the unlinked ones as `IsActive = false`, a batch at a time.
    pub(super) async fn apply_held(&mut self) -> Result<(), ReconError> {
        if self.run.req.analyze {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        let pool = self.run.pool().clone();
        for batch in held.chunks(HELD_BATCH) {
            let mut queue = Vec::new();
            let mut direct: Vec<(String, Map<String, Value>)> = Vec::new();
            for h in batch {
                match &h.via {
                    Via::Worker { user, rev } => queue.push((user.clone(), *rev, Vec::new())),
                    Via::Direct { target } => {
                        let mut record = Map::new();
                        record.insert("IsActive".into(), Value::Bool(false));
                        direct.push((target.clone(), record));
                    }
                }
            }
            let mut results = if direct.is_empty() {
                Vec::new()
            } else {
                self.run.client.update_many(&direct).await
            }
            .into_iter();
            let mut rows = Vec::with_capacity(batch.len());
            for h in batch {
                let failure = match &h.via {
                    Via::Worker { .. } => None,
                    Via::Direct { .. } => match results.next() {
                        Some(Ok(_)) => None,
                        Some(Err(e)) => Some(e.to_string()),
                        None => Some("no result for the record".to_owned()),
                    },
                };
                if failure.is_some() {
                    self.run.stats.failure += 1;
                } else {
                    self.run.stats.success += 1;
                    self.run.stats.deleted += 1;
                }
                let about = Audited {
                    phase: h.phase,
                    source_id: h.source_id.as_deref(),
                    target_id: h.target_id.as_deref(),
                    situation: h.situation,
                    action: Some(Action::Delete),
                    status: if failure.is_some() {
                        "FAILURE"
                    } else {
                        "SUCCESS"
                    },
                    unchanged: false,
                };
                self.audit(&about, failure, &mut rows);
            }
            let mut tx = repo::begin(&pool).await?;
            self.enqueue(&mut tx, &queue).await?;
            audit::insert_batch(&mut *tx, &self.run.id, &rows).await?;
            repo::commit(tx).await?;
        }
        Ok(())
    }
}
