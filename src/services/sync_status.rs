//! What the operator pages show about implicit sync: the health of the whole pipeline (outbox
//! backlog, failures, live workers) and one user's standing with the target (links, last sync,
//! open failure); and when each schedule last fired. Reads only.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::AppState;
use crate::config::systems::Resource;
use crate::repo::links::LinkEnds;
use crate::repo::sync_failures::ListedFailure;
use crate::repo::workers::WorkerMember;
use crate::repo::{RepoError, links, outbox, salesforce_tokens, schedule_firings, sync_audit};
use crate::repo::{sync_failures, workers};

/// The sync pipeline at a glance.
#[derive(Debug)]
pub struct SyncHealth {
    /// Outbox rows not yet published, and the age in seconds of the oldest.
    pub backlog: i64,
    pub oldest_unpublished_secs: Option<f64>,
    pub open_failures: i64,
    /// The newest failures, newest first.
    pub recent_failures: Vec<ListedFailure>,
    pub live_workers: Vec<WorkerMember>,
}

/// One managed object's standing with the target systems.
#[derive(Debug)]
pub struct ObjectSync {
    pub links: Vec<ObjectLink>,
    /// The newest implicit-sync audit entry about the object.
    pub last_sync: Option<Value>,
    pub open_failure: Option<ListedFailure>,
}

/// A link of the object, and where its other end is shown.
#[derive(Debug)]
pub struct ObjectLink {
    pub link: LinkEnds,
    /// The system the link's mapping reads or writes, when the mapping is configured.
    pub system: Option<String>,
    /// Where that system's records are shown (the org's instance URL), when known.
    pub instance_url: Option<String>,
}

impl AppState {
    /// The sync pipeline's health, with the newest `failures` failures.
    pub async fn sync_health(&self, failures: i64) -> Result<SyncHealth, RepoError> {
        let pool = self.managed.pool();
        // Independent reads: on connections of their own, at once.
        let ((backlog, oldest_unpublished_secs), open_failures, recent_failures, live_workers) = tokio::try_join!(
            outbox::backlog_and_oldest(pool),
            sync_failures::count(pool),
            sync_failures::recent(pool, failures),
            workers::live_all(pool),
        )?;
        Ok(SyncHealth {
            backlog,
            oldest_unpublished_secs,
            open_failures,
            recent_failures,
            live_workers,
        })
    }

    /// Managed object `object_type`/`id` as implicit sync sees it.
    pub async fn object_sync(&self, object_type: &str, id: &str) -> Result<ObjectSync, RepoError> {
        let pool = self.managed.pool();
        let source = format!("managed/{object_type}/{id}");
        // Independent reads: on connections of their own, at once.
        let (ends, last_sync, open_failure) = tokio::try_join!(
            links::of_object(pool, id),
            sync_audit::latest_for_source(pool, &source),
            sync_failures::latest_of(pool, object_type, id),
        )?;
        let mut links = Vec::with_capacity(ends.len());
        for link in ends {
            let system = self.system_of_link(&link.link_type);
            let instance_url = match &system {
                Some(name) => self.instance_url(name).await?,
                None => None,
            };
            links.push(ObjectLink {
                link,
                system,
                instance_url,
            });
        }
        Ok(ObjectSync {
            links,
            last_sync,
            open_failure,
        })
    }

    /// The system a link type's mapping reads or writes.
    fn system_of_link(&self, link_type: &str) -> Option<String> {
        let sync = self.recon.as_ref()?.sync_config();
        let mapping = sync.mappings.iter().find(|m| m.link_type() == link_type)?;
        [&mapping.source, &mapping.target]
            .into_iter()
            .find_map(|side| match Resource::parse(side) {
                Some(Resource::System { name, .. }) => Some(name.to_owned()),
                _ => None,
            })
    }

    /// The org's instance URL of connector `system`: the stored one, else the client's.
    async fn instance_url(&self, system: &str) -> Result<Option<String>, RepoError> {
        let stored = salesforce_tokens::instance_url(self.managed.pool(), system).await?;
        Ok(stored.or_else(|| self.connectors.get(system).and_then(|c| c.instance_url())))
    }

    /// When each schedule last fired, by schedule id.
    pub async fn last_firings(&self) -> Result<Vec<(String, DateTime<Utc>)>, RepoError> {
        schedule_firings::last_of_each(self.managed.pool()).await
    }
}
