//! Resync: re-enqueues the users of an outbound mapping not known to be in step with the
//! target (no link yet, a link lagging its user, a link whose user is gone), the recovery after
//! change events were lost on the broker's side.

use crate::repo::{self, RepoError, outbox};

use super::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error("Synchronization is not configured (conf/sync.json and the Salesforce provisioner)")]
    NotConfigured,
    #[error("Mapping {0} not found")]
    UnknownMapping(String),
    #[error("Mapping {0} does not start from a managed object: resync re-enqueues managed changes")]
    NotFromManaged(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Queues mapping `name`'s lagging users; returns how many, committed.
pub async fn resync(state: &AppState, name: &str) -> Result<u64, ResyncError> {
    let recon = state.recon.as_ref().ok_or(ResyncError::NotConfigured)?;
    let mapping = recon
        .sync_config()
        .mapping(name)
        .ok_or_else(|| ResyncError::UnknownMapping(name.to_owned()))?;
    let object_type = mapping
        .source
        .strip_prefix("managed/")
        .ok_or_else(|| ResyncError::NotFromManaged(name.to_owned()))?;
    let mut tx = repo::begin(state.managed.pool()).await?;
    let n = outbox::enqueue_lagging(
        &mut tx,
        object_type,
        mapping.link_type(),
        Some(&mapping.name),
    )
    .await?;
    repo::commit(tx).await?;
    Ok(n)
}
