//! The relation object sets REST reads (`repo/link`, `audit/recon`, `audit/sync`,
//! `sync/failures`): a page of rows matching a query filter, in `_id` order.

use crate::filter::Filter;
use crate::repo::relation_query::Row;
use crate::repo::{Pool, RepoError, audit, links, sync_audit, sync_failures};

/// The object sets answered through [`Relations::page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Links,
    ReconAudit,
    SyncFailures,
    SyncAudit,
}

#[derive(Clone)]
pub struct Relations {
    pool: Pool,
}

impl Relations {
    pub fn new(pool: Pool) -> Relations {
        Relations { pool }
    }

    /// At most `limit` rows of `relation` matching `filter` with `_id` after `after`.
    pub async fn page(
        &self,
        relation: Relation,
        filter: &Filter,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Row>, RepoError> {
        let pool = &self.pool;
        match relation {
            Relation::Links => links::query(pool, filter, after, limit).await,
            Relation::ReconAudit => audit::query(pool, filter, after, limit).await,
            Relation::SyncFailures => sync_failures::query(pool, filter, after, limit).await,
            Relation::SyncAudit => sync_audit::query(pool, filter, after, limit).await,
        }
    }
}
