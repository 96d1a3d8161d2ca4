//! Which partitions of its lane each outbound worker consumes, agreed through Postgres.
//!
//! Every worker heartbeats its row in `outbound_workers` (every quarter of the lease, at most
//! 2 s), naming its lane (the outbound mapping it applies); a member whose heartbeat is older
//! than the lease TTL (6 s by default) is dead. The workers of one lane divide that lane's
//! partitions among themselves alone (each lane has queues of its own, so the workers of
//! another mapping neither take nor hold them). From the lane's live members, every worker
//! computes the same owner per partition: **rendezvous hashing
//! with bounded load** — partition p goes to the member with the highest `hash(member, p)`
//! that owns fewer than ⌈P / n⌉ partitions so far. Loads stay within one of each other, and a
//! member joining or leaving moves few partitions (mostly those it gains or loses).
//!
//! Workers act on their own view; two views may differ for a heartbeat or so. The queues'
//! single active consumer covers that overlap: a gaining worker waits as a standby consumer
//! until the losing one has closed the partition's channel.
//!
//! A worker that cannot renew its lease for a whole TTL gives up every partition (its peers
//! already count it dead); a worker that stops deregisters at once, so peers take over at
//! their next heartbeat instead of after the TTL. A worker cut off from the broker for a whole
//! TTL while Postgres still answers steps aside the same way (it deregisters and stops
//! heartbeating, so its partitions go to workers that can consume them) and rejoins once its
//! broker connection is back.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::broker::BrokerStatus;
use crate::repo::{Pool, RepoError, workers};

/// How a worker takes part in the membership.
#[derive(Debug, Clone)]
pub struct Membership {
    pub pool: Pool,
    pub worker_id: String,
    /// The outbound mapping whose partitions it shares with the lane's other workers.
    pub lane: String,
    pub host: String,
    pub partitions: u16,
    pub lease_ttl: Duration,
    /// This worker's broker connection: cut off for a whole lease, it steps aside.
    pub broker: BrokerStatus,
}

impl Membership {
    /// The heartbeat period: four renewals per lease, at most 2 s apart.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.lease_ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(2))
    }

    /// Heartbeats until `stop`, publishing the partitions this worker should own to `target`
    /// and recording the ones it consumes (`held`) in its row; then deregisters.
    pub async fn run(
        self,
        held: watch::Receiver<BTreeSet<u16>>,
        target: watch::Sender<BTreeSet<u16>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let interval = self.heartbeat_interval();
        let mut last_renewed: Option<Instant> = None;
        let mut broker_down_since: Option<Instant> = None;
        let mut stepped_aside = false;
        loop {
            broker_down_since = if self.broker.is_up() {
                None
            } else {
                broker_down_since.or_else(|| Some(Instant::now()))
            };
            if broker_down_since.is_some_and(|t| t.elapsed() >= self.lease_ttl) {
                if !stepped_aside {
                    tracing::warn!(worker = %self.worker_id, "cut off from the broker for a whole lease: leaving this worker's partitions to the others until it reconnects");
                    publish(&target, BTreeSet::new());
                    if let Err(e) = workers::deregister(&self.pool, &self.worker_id).await {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot deregister; the lease runs out instead");
                    }
                    stepped_aside = true;
                    last_renewed = None;
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    () = tokio::time::sleep(interval) => {}
                }
                continue;
            }
            if stepped_aside {
                tracing::info!(worker = %self.worker_id, "broker reachable again: rejoining the outbound workers");
                stepped_aside = false;
            }
            match self.beat(&held).await {
                Ok(owned) => {
                    last_renewed = Some(Instant::now());
                    publish(&target, owned);
                }
                Err(e) => {
                    let expired = last_renewed.is_none_or(|t| t.elapsed() >= self.lease_ttl);
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), lease_expired = expired, "outbound worker heartbeat failed");
                    if expired {
                        // Peers count this worker dead and take its partitions: let them go.
                        publish(&target, BTreeSet::new());
                    }
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
        match workers::deregister(&self.pool, &self.worker_id).await {
            Ok(()) => tracing::info!(worker = %self.worker_id, "outbound worker deregistered"),
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot deregister the outbound worker; its lease runs out instead")
            }
        }
    }

    /// Renews the lease and computes this worker's partitions from its lane's live members.
    async fn beat(
        &self,
        held: &watch::Receiver<BTreeSet<u16>>,
    ) -> Result<BTreeSet<u16>, RepoError> {
        let consuming: Vec<i32> = held.borrow().iter().map(|&p| i32::from(p)).collect();
        workers::heartbeat(
            &self.pool,
            &self.worker_id,
            &self.lane,
            &self.host,
            &consuming,
        )
        .await?;
        let live = workers::live_within(&self.pool, &self.lane, self.lease_ttl).await?;
        // Rows of workers that died unannounced, long after anyone could count them alive.
        let reap_after = (self.lease_ttl * 10).max(Duration::from_secs(60));
        if let Err(e) = workers::reap(&self.pool, reap_after).await {
            tracing::debug!(error = %crate::telemetry::error_chain(&e), "cannot remove the rows of dead workers");
        }
        let mut ids: Vec<&str> = live.iter().map(|m| m.worker_id.as_str()).collect();
        if !ids.contains(&self.worker_id.as_str()) {
            ids.push(&self.worker_id);
        }
        Ok(owned(&ids, &self.worker_id, self.partitions))
    }
}

fn publish(target: &watch::Sender<BTreeSet<u16>>, owned: BTreeSet<u16>) {
    target.send_if_modified(|current| {
        if *current == owned {
            return false;
        }
        tracing::info!(partitions = ?owned, "outbound worker partitions assigned");
        *current = owned;
        true
    });
}

/// The partitions `me` owns among `members` (every member computes the same split).
pub fn owned(members: &[&str], me: &str, partitions: u16) -> BTreeSet<u16> {
    let mut members: Vec<&str> = members.to_vec();
    members.sort_unstable();
    members.dedup();
    let Some(mine) = members.iter().position(|m| *m == me) else {
        return BTreeSet::new();
    };
    assign(&members, partitions)
        .into_iter()
        .enumerate()
        .filter(|&(_, owner)| owner == mine)
        .map(|(p, _)| p as u16)
        .collect()
}

/// The owner (an index into `members`, sorted and distinct) of each partition.
fn assign(members: &[&str], partitions: u16) -> Vec<usize> {
    let n = members.len().max(1);
    let cap = usize::from(partitions).div_ceil(n);
    let mut load = vec![0usize; n];
    (0..partitions)
        .map(|p| {
            let mut ranked: Vec<usize> = (0..members.len()).collect();
            // Highest score first; ties (practically impossible) by member order.
            ranked.sort_by_key(|&i| std::cmp::Reverse(members.get(i).map(|m| score(m, p))));
            let owner = ranked
                .into_iter()
                .find(|&i| load.get(i).is_some_and(|l| *l < cap))
                .unwrap_or_default();
            if let Some(l) = load.get_mut(owner) {
                *l += 1;
            }
            owner
        })
        .collect()
}

/// A stable pseudo-random score of (member, partition): FNV-1a, then a 64-bit finalizer so
/// that ids differing in one character still rank independently.
fn score(member: &str, partition: u16) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in member.bytes().chain([0]).chain(partition.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// This machine's name, for the membership table.
pub fn local_host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("worker-{i:02}")).collect()
    }

    fn split(members: &[String], partitions: u16) -> Vec<BTreeSet<u16>> {
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        members
            .iter()
            .map(|m| owned(&refs, m, partitions))
            .collect()
    }

    #[test]
    fn a_lone_worker_owns_everything() {
        assert_eq!(owned(&["a"], "a", 16), (0..16).collect());
        assert!(owned(&["a"], "b", 16).is_empty(), "not a member, nothing");
    }

    #[test]
    fn every_partition_has_one_owner_and_loads_are_even() {
        for n in 1..=8 {
            for partitions in [1u16, 4, 12, 16, 64] {
                let parts = split(&ids(n), partitions);
                let mut all: Vec<u16> = parts.iter().flatten().copied().collect();
                all.sort_unstable();
                assert_eq!(
                    all,
                    (0..partitions).collect::<Vec<_>>(),
                    "n={n} P={partitions}"
                );
                let cap = usize::from(partitions).div_ceil(n);
                assert!(parts.iter().all(|p| p.len() <= cap), "n={n} P={partitions}");
            }
        }
        let three = split(&ids(3), 12);
        assert!(three.iter().all(|p| p.len() == 4), "{three:?}");
    }

    #[test]
    fn the_split_ignores_the_order_members_are_listed_in() {
        let a = owned(&["x", "y", "z"], "y", 16);
        let b = owned(&["z", "y", "x", "y"], "y", 16);
        assert_eq!(a, b);
    }

    #[test]
    fn a_member_leaving_moves_few_partitions() {
        let partitions = 64;
        let before = ids(4);
        let after = ids(3); // worker-03 left
        let old = split(&before, partitions);
        let new = split(&after, partitions);
        let mut moved_between_survivors = 0;
        for (i, (o, n)) in old.iter().zip(&new).enumerate() {
            assert!(o.len() <= n.len(), "survivor {i} lost partitions");
            moved_between_survivors += o.difference(n).count();
        }
        // Everything worker-03 held moves; at most a few others are rebalanced.
        assert!(moved_between_survivors <= 8, "{moved_between_survivors}");
    }
}
