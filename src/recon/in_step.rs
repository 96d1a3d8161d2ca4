//! The links recon last saw in step, read once at the start of an inbound run (one pass over
//! the links and the managed objects) instead of once per page: a source record whose digest is
//! the one its link holds, while its managed object is still at the link's revision, is
//! CONFIRMED and unchanged without a look-up.
//!
//! Kept compact: per link a 64-bit key of the source id, the digest's first 64 bits and the
//! target's key in [`SeenTargets`], 24 bytes in one sorted vector (2.3 MiB at 100,000 users,
//! 23 MiB at a million, 46 MiB at two million, the touched targets' memory cap past which runs
//! probe per page as before). A record is taken as unchanged only when both its key and its
//! digest match, so a key collision alone sends it through the full assessment. What the run
//! then sees is the repository as it was read: a managed object written after that is
//! reconciled by the next run.
//!
//! The read runs beside the source phase ([`Loading`]): pages assessed before it ends probe
//! per page as before, the rest check in memory.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock};

use super::seen::SeenTargets;
use crate::mapping::{Action, DEFAULT_LINK_QUALIFIER, Decision, Mapping, Situation};
use crate::repo::{Pool, RepoError, links};

pub(crate) struct InStep {
    keys: RandomState,
    /// (source key, digest prefix, target key), sorted by source key.
    links: Vec<(u64, u64, u64)>,
}

impl InStep {
    /// Reads the links of `link_type` in step with managed objects of `object_type`; targets
    /// are keyed with `seen_keys` (see [`SeenTargets::hasher`]). `expected`: about how many
    /// links there are (room is made for them once).
    pub async fn load(
        pool: &Pool,
        link_type: &str,
        object_type: &str,
        seen_keys: &RandomState,
        expected: usize,
    ) -> Result<InStep, RepoError> {
        let keys = RandomState::new();
        let mut links = Vec::with_capacity(expected);
        links::for_each_in_step(
            pool,
            link_type,
            DEFAULT_LINK_QUALIFIER,
            object_type,
            |source, target, digest| {
                if let Some(prefix) = prefix(digest) {
                    links.push((keys.hash_one(source), prefix, seen_keys.hash_one(target)));
                }
            },
        )
        .await?;
        links.sort_unstable_by_key(|l| l.0);
        links.shrink_to_fit();
        Ok(InStep { keys, links })
    }

    /// The target's key when `source_id`'s record, of digest `digest`, is in step.
    pub fn target_key(&self, source_id: &str, digest: &[u8; 32]) -> Option<u64> {
        let key = self.keys.hash_one(source_id);
        let at = self.links.binary_search_by_key(&key, |l| l.0).ok()?;
        let (_, held, target) = self.links.get(at)?;
        (Some(*held) == prefix(digest)).then_some(*target)
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }
}

/// The links in step, being read in a task of their own; the shared cell stays empty until
/// they are all read (or for good, when the read failed: it is only an optimisation). The
/// read stops when this is dropped.
pub(crate) struct Loading {
    cell: Arc<OnceLock<InStep>>,
    task: tokio::task::AbortHandle,
}

impl Loading {
    pub fn spawn(
        pool: Pool,
        link_type: String,
        object_type: String,
        seen: &SeenTargets,
        expected: usize,
    ) -> Loading {
        let cell = Arc::new(OnceLock::new());
        let keys = seen.hasher();
        let filled = cell.clone();
        let task = tokio::spawn(async move {
            let t = std::time::Instant::now();
            match InStep::load(&pool, &link_type, &object_type, &keys, expected).await {
                Ok(in_step) => {
                    tracing::debug!(links = in_step.len(), took = ?t.elapsed(), "links in step read");
                    let _ = filled.set(in_step);
                }
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot read the links in step up front; pages probe them one by one");
                }
            }
        });
        Loading {
            cell,
            task: task.abort_handle(),
        }
    }

    /// A handle the page assessments share.
    pub fn share(&self) -> Arc<OnceLock<InStep>> {
        self.cell.clone()
    }
}

impl Drop for Loading {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// CONFIRMED's decision when the unchanged fast path applies: a plain UPDATE, with no
/// condition, script or postAction to run per object, and no `onUpdate` (which runs for every
/// UPDATE, changed or not, as in IDM).
pub(crate) fn plain_confirmed_update(mapping: &Mapping) -> Option<Decision<'_>> {
    let decision = mapping.static_decision(Situation::Confirmed)?;
    (decision.action == Action::Update
        && decision.policy.is_none_or(|p| p.post_action.is_none())
        && !mapping.has_on_update())
    .then_some(decision)
}

fn prefix(digest: &[u8]) -> Option<u64> {
    let first: [u8; 8] = digest.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_source_with_the_same_digest_is_in_step() {
        let seen = SeenTargets::new(10);
        let keys = RandomState::new();
        let digest = [7u8; 32];
        let mut links = vec![
            (
                keys.hash_one("005A"),
                prefix(&digest).unwrap_or(0),
                seen.hasher().hash_one("t1"),
            ),
            (keys.hash_one("005C"), 0, 0),
        ];
        links.sort_unstable_by_key(|l| l.0);
        let in_step = InStep { keys, links };
        assert_eq!(
            in_step.target_key("005A", &digest),
            Some(seen.hasher().hash_one("t1"))
        );
        let mut changed = digest;
        changed[3] = 0;
        assert_eq!(in_step.target_key("005A", &changed), None);
        assert_eq!(in_step.target_key("005B", &digest), None);
        assert_eq!(in_step.len(), 2);
        assert_eq!(prefix(&[1, 2]), None, "a short digest is never in step");
    }
}
