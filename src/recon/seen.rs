//! The targets a run's source phase touched, so that its target phase visits only the others.
//!
//! Held in memory as 64-bit hashes, up to [`MEMORY_CAP`] targets (16 MiB): an unchanged
//! re-recon then writes nothing at all. Past the cap the run writes the rest to the unlogged
//! `recon_seen` table, as every run did before, so memory stays bounded whatever the org's
//! size. The hashes are keyed afresh for each run: two ids that happen to collide (at a
//! million targets, about one chance in twenty million) cannot hide a target run after run.

use std::hash::{BuildHasher, RandomState};

/// Targets remembered in memory at most (8 bytes each).
pub(crate) const MEMORY_CAP: usize = 2_000_000;

pub(crate) struct SeenTargets {
    keys: RandomState,
    hashes: Vec<u64>,
    cap: usize,
    /// Some targets went to `recon_seen`: the target phase asks it too.
    spilled: bool,
    sorted: bool,
}

impl SeenTargets {
    pub fn new(cap: usize) -> SeenTargets {
        SeenTargets {
            keys: RandomState::new(),
            hashes: Vec::new(),
            cap,
            spilled: false,
            sorted: true,
        }
    }

    /// Remembers `ids` in memory; `false` when the cap is reached and the caller must write
    /// them to `recon_seen` instead (from then on, every later page as well).
    pub fn remember(&mut self, ids: &[String]) -> bool {
        if self.spilled || self.hashes.len() + ids.len() > self.cap {
            self.spilled = true;
            return false;
        }
        self.hashes
            .extend(ids.iter().map(|id| self.keys.hash_one(id.as_str())));
        self.sorted = false;
        true
    }

    /// What makes the keys [`SeenTargets::remember_keys`] takes (`hash_one(id)`).
    pub fn hasher(&self) -> RandomState {
        self.keys.clone()
    }

    /// As [`SeenTargets::remember`], for targets known by their key only (see [`SeenTargets::hasher`]):
    /// `false` past the cap, and then they are not remembered (the target phase visits them,
    /// which costs time, not correctness).
    pub fn remember_keys(&mut self, keys: &[u64]) -> bool {
        if self.spilled || self.hashes.len() + keys.len() > self.cap {
            return false;
        }
        self.hashes.extend_from_slice(keys);
        self.sorted = false;
        true
    }

    pub fn spilled(&self) -> bool {
        self.spilled
    }

    /// Whether `id` was remembered (not counting what went to `recon_seen`).
    pub fn contains(&mut self, id: &str) -> bool {
        if !self.sorted {
            self.hashes.sort_unstable();
            self.hashes.dedup();
            self.hashes.shrink_to_fit();
            self.sorted = true;
        }
        self.hashes.binary_search(&self.keys.hash_one(id)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| format!("target-{i}")).collect()
    }

    #[test]
    fn remembers_what_it_holds_and_spills_past_the_cap() {
        let mut seen = SeenTargets::new(5);
        assert!(seen.remember(&ids(0..3)));
        assert!(!seen.remember(&ids(3..6)), "3 + 3 > 5");
        assert!(seen.spilled());
        assert!(!seen.remember(&ids(6..7)), "once spilled, always spilled");
        assert!(seen.contains("target-0") && seen.contains("target-2"));
        assert!(
            !seen.contains("target-3"),
            "written to recon_seen, not held"
        );
        assert!(!seen.contains("target-99"));
    }

    #[test]
    fn targets_remembered_by_key_are_seen() {
        let mut seen = SeenTargets::new(10);
        let hasher = seen.hasher();
        let keys: Vec<u64> = ids(0..3).iter().map(|id| hasher.hash_one(id)).collect();
        assert!(seen.remember_keys(&keys));
        assert!(seen.contains("target-1") && !seen.contains("target-7"));
        assert!(!seen.remember_keys(&[0; 20]), "past the cap");
    }

    #[test]
    fn lookups_after_more_pages_see_them() {
        let mut seen = SeenTargets::new(MEMORY_CAP);
        assert!(seen.remember(&ids(0..1000)));
        assert!(seen.contains("target-999"));
        assert!(seen.remember(&ids(1000..2000)));
        assert!(seen.contains("target-1999") && seen.contains("target-0"));
        assert!(!seen.spilled());
    }
}
