//! Sync failures (`/openidm/sync/failures`, the Admin UI's Retry buttons): a retry writes an
//! outbox row for the object's current revision and clears nothing until the worker succeeds.

use crate::repo::{self, Pool, RepoError, sync_failures};

/// Retries over one pool.
pub struct SyncFailures<'a> {
    pool: &'a Pool,
}

impl<'a> SyncFailures<'a> {
    pub fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// Queues failure `id` for another sync; `false` when there is no such failure.
    pub async fn retry(&self, id: &str) -> Result<bool, RepoError> {
        let mut tx = repo::begin(self.pool).await?;
        let found = sync_failures::retry(&mut tx, id).await?;
        if found {
            repo::commit(tx).await?;
        }
        Ok(found)
    }

    /// Queues every failure for another sync; returns how many.
    pub async fn retry_all(&self) -> Result<u64, RepoError> {
        let mut tx = repo::begin(self.pool).await?;
        let n = sync_failures::retry_all(&mut tx).await?;
        repo::commit(tx).await?;
        Ok(n)
    }
}
