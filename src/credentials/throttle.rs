//! Failed credential checks counted per client address and per user name, in this process's
//! memory: a failure costs a map update, never a database write, so a flood of wrong passwords
//! cannot turn into database load. Both maps are bounded; the bound and what follows from
//! several replicas counting separately are in the README ("Credential guarding").
//!
//! An address gets `free_failures` failures; each later one blocks it for a doubling time
//! (`first_block`, 2×, 4× … up to `max_block`), during which its attempts are refused without
//! checking the password, so guesses made while blocked learn nothing. Counts are forgotten
//! after `forget_after` without a failure; a success clears its address's count.
//!
//! A user name never locks: a name many addresses fail against ("under attack") only shrinks
//! the free failures of each address to one. An address with no failure is always checked, so
//! the right password from a clean address works whatever strangers do.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::client_key::ClientKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures from one address before blocks begin (`IDM_AUTH_MAX_FAILURES`).
    pub free_failures: u32,
    pub first_block: Duration,
    /// The longest block (`IDM_AUTH_MAX_BLOCK_MINUTES`).
    pub max_block: Duration,
    /// A count with no failure for this long is forgotten (longer than `max_block`, so a
    /// patient guesser's count never resets).
    pub forget_after: Duration,
    /// Addresses and user names tracked at most (memory bound).
    pub max_addresses: usize,
    pub max_names: usize,
    /// Failures against one user name, from any address, that put it under attack.
    pub name_alarm: u32,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            free_failures: 5,
            first_block: Duration::from_secs(1),
            max_block: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            max_addresses: 10_000,
            max_names: 1_000,
            name_alarm: 20,
        }
    }
}

struct AddressEntry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
    /// Hash verifications in progress for this address (they count against its free failures).
    slow_checks: u32,
}

struct NameEntry {
    failures: u32,
    last_failure: Instant,
}

#[derive(Default)]
struct State {
    addresses: HashMap<ClientKey, AddressEntry>,
    /// Keyed by a keyed hash of the name: a typed-in password never stays in memory, and
    /// every entry has the same small size.
    names: HashMap<u64, NameEntry>,
}

pub struct Throttle {
    settings: ThrottleSettings,
    names_hasher: RandomState,
    state: Mutex<State>,
    /// `state.addresses.len()`, written under the lock: with no address tracked (the usual
    /// case) a request's checks take no lock.
    addresses: AtomicUsize,
}

/// How many entries the throttle holds (tests check the bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    pub addresses: usize,
    pub names: usize,
}

/// A hash verification in progress for an address; ends when dropped.
pub struct SlowCheck<'a> {
    throttle: &'a Throttle,
    key: ClientKey,
}

impl Drop for SlowCheck<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.throttle.lock().addresses.get_mut(&self.key) {
            entry.slow_checks = entry.slow_checks.saturating_sub(1);
        }
    }
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Throttle {
        Throttle {
            settings,
            names_hasher: RandomState::new(),
            state: Mutex::new(State::default()),
            addresses: AtomicUsize::new(0),
        }
    }

    pub fn settings(&self) -> &ThrottleSettings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every await-free step: a panic elsewhere cannot have
        // left it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn counted(&self, state: &State) {
        self.addresses
            .store(state.addresses.len(), Ordering::Release);
    }

    /// How much longer `key` is blocked, if it is.
    pub fn blocked(&self, key: ClientKey, now: Instant) -> Option<Duration> {
        if self.addresses.load(Ordering::Acquire) == 0 {
            return None;
        }
        let state = self.lock();
        let until = state.addresses.get(&key)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Starts a hash verification for `key`, unless its checks in progress and failures
    /// already use up its free failures (then: retry after a second). Bounds how many guesses
    /// one address gets in flight before its first failure is counted.
    pub fn begin_slow_check(
        &self,
        key: ClientKey,
        now: Instant,
    ) -> Result<SlowCheck<'_>, Duration> {
        let mut state = self.lock();
        let entry = self.address_entry(&mut state, key, now);
        let budget = self
            .settings
            .free_failures
            .saturating_sub(entry.failures)
            .max(1);
        if entry.slow_checks >= budget {
            return Err(Duration::from_secs(1));
        }
        entry.slow_checks += 1;
        Ok(SlowCheck {
            throttle: self,
            key,
        })
    }

    /// Counts a failure of `username` from `key`; returns the block it starts, if any.
    pub fn failure(&self, key: ClientKey, username: &str, now: Instant) -> Option<Duration> {
        let name = self.names_hasher.hash_one(username.trim().to_lowercase());
        let mut state = self.lock();
        let forget = self.settings.forget_after;

        if !state.names.contains_key(&name) {
            self.make_room_for_name(&mut state, now);
        }
        let entry = state.names.entry(name).or_insert(NameEntry {
            failures: 0,
            last_failure: now,
        });
        if now.saturating_duration_since(entry.last_failure) > forget {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let under_attack = entry.failures > self.settings.name_alarm;

        let entry = self.address_entry(&mut state, key, now);
        if now.saturating_duration_since(entry.last_failure) > forget {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let allowance = if under_attack {
            1
        } else {
            self.settings.free_failures
        };
        let block = (entry.failures > allowance).then(|| {
            let doublings = (entry.failures - allowance - 1).min(30);
            let block = self
                .settings
                .first_block
                .saturating_mul(1 << doublings)
                .min(self.settings.max_block);
            entry.blocked_until = Some(now + block);
            block
        });
        self.counted(&state);
        block
    }

    /// A success forgets the address's failures (not the name's: an attack on it goes on).
    pub fn success(&self, key: ClientKey) {
        if self.addresses.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut state = self.lock();
        if let Some(entry) = state.addresses.get_mut(&key) {
            entry.failures = 0;
            entry.blocked_until = None;
            if entry.slow_checks == 0 {
                state.addresses.remove(&key);
            }
        }
        self.counted(&state);
    }

    pub fn tracked(&self) -> Tracked {
        let state = self.lock();
        Tracked {
            addresses: state.addresses.len(),
            names: state.names.len(),
        }
    }

    /// The entry of `key`, made (room first) when the address is new.
    fn address_entry<'s>(
        &self,
        state: &'s mut State,
        key: ClientKey,
        now: Instant,
    ) -> &'s mut AddressEntry {
        if !state.addresses.contains_key(&key) {
            self.make_room_for_address(state, now);
        }
        state.addresses.entry(key).or_insert(AddressEntry {
            failures: 0,
            last_failure: now,
            blocked_until: None,
            slow_checks: 0,
        })
    }

    fn make_room_for_address(&self, state: &mut State, now: Instant) {
        let forget = self.settings.forget_after;
        make_room(
            &mut state.addresses,
            self.settings.max_addresses,
            |e| {
                e.slow_checks == 0
                    && e.blocked_until.is_none_or(|u| u <= now)
                    && now.saturating_duration_since(e.last_failure) > forget
            },
            |e| (e.failures, e.last_failure),
        );
    }

    fn make_room_for_name(&self, state: &mut State, now: Instant) {
        let forget = self.settings.forget_after;
        make_room(
            &mut state.names,
            self.settings.max_names,
            |e| now.saturating_duration_since(e.last_failure) > forget,
            |e| (e.failures, e.last_failure),
        );
    }
}

/// Makes room for one more entry in a full map: forgotten entries go first; if that is not
/// enough, the sixteenth that tells least (fewest failures, then oldest) goes, so an attacker
/// cycling addresses or names evicts mostly its own fresh entries, and the work of a sweep is
/// spread over many insertions.
fn make_room<K: Copy + Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    forgotten: impl Fn(&V) -> bool,
    rank: impl Fn(&V) -> (u32, Instant),
) {
    if map.len() < cap {
        return;
    }
    map.retain(|_, v| !forgotten(v));
    if map.len() < cap {
        return;
    }
    let mut ranked: Vec<((u32, Instant), K)> = map.iter().map(|(k, v)| (rank(v), *k)).collect();
    let evict = (cap / 16).clamp(1, ranked.len());
    ranked.select_nth_unstable_by_key(evict - 1, |(r, _)| *r);
    for (_, key) in ranked.drain(..evict) {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn addr(n: u32) -> ClientKey {
        ClientKey::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn blocks_double_after_the_free_failures_and_a_success_clears_them() {
        let t = Throttle::new(ThrottleSettings::default());
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(t.failure(addr(1), "admin", now), None);
        }
        assert_eq!(t.blocked(addr(1), now), None);
        assert_eq!(
            t.failure(addr(1), "admin", now),
            Some(Duration::from_secs(1))
        );
        assert_eq!(t.blocked(addr(1), now), Some(Duration::from_secs(1)));
        assert_eq!(
            t.blocked(addr(2), now),
            None,
            "other addresses are not held up"
        );
        assert_eq!(
            t.failure(addr(1), "admin", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            t.failure(addr(1), "admin", now),
            Some(Duration::from_secs(4))
        );
        for _ in 0..20 {
            t.failure(addr(1), "admin", now);
        }
        assert_eq!(t.blocked(addr(1), now), Some(Duration::from_secs(900)));
        t.success(addr(1));
        assert_eq!(t.blocked(addr(1), now), None);
        assert_eq!(t.failure(addr(1), "admin", now), None);
        // Forgotten after an hour without failure.
        let t = Throttle::new(ThrottleSettings::default());
        for _ in 0..5 {
            t.failure(addr(1), "x", now);
        }
        let later = now + Duration::from_secs(3601);
        assert_eq!(t.failure(addr(1), "x", later), None);
    }

    #[test]
    fn a_name_under_attack_leaves_each_address_one_free_failure() {
        let t = Throttle::new(ThrottleSettings::default());
        let now = Instant::now();
        // A botnet: 21 addresses, one guess each, puts the name under attack.
        for n in 0..21 {
            assert_eq!(t.failure(addr(100 + n), "Admin ", now), None);
        }
        // A new address gets one free failure against it, then blocks.
        assert_eq!(t.failure(addr(7), "admin", now), None);
        assert!(t.failure(addr(7), "admin", now).is_some());
        // Other names keep the usual allowance.
        for _ in 0..5 {
            assert_eq!(t.failure(addr(8), "someone", now), None);
        }
        // A clean address is never blocked before it fails: the right password gets checked.
        assert_eq!(t.blocked(addr(9), now), None);
    }

    #[test]
    fn slow_checks_in_flight_count_against_the_free_failures() {
        let t = Throttle::new(ThrottleSettings::default());
        let now = Instant::now();
        let held: Vec<_> = (0..5)
            .map(|_| t.begin_slow_check(addr(1), now).unwrap())
            .collect();
        assert_eq!(
            t.begin_slow_check(addr(1), now).err(),
            Some(Duration::from_secs(1))
        );
        assert!(t.begin_slow_check(addr(2), now).is_ok());
        drop(held);
        assert!(t.begin_slow_check(addr(1), now).is_ok());
        for _ in 0..5 {
            t.failure(addr(3), "a", now);
        }
        // No free failure left: still one check at a time.
        let one = t.begin_slow_check(addr(3), now).unwrap();
        assert!(t.begin_slow_check(addr(3), now).is_err());
        drop(one);
    }

    #[test]
    fn memory_is_bounded_whatever_addresses_and_names_are_cycled() {
        let settings = ThrottleSettings {
            max_addresses: 64,
            max_names: 32,
            ..ThrottleSettings::default()
        };
        let t = Throttle::new(settings);
        let now = Instant::now();
        // One persistent guesser, then a flood of fresh addresses and names.
        for _ in 0..10 {
            t.failure(addr(1), "admin", now);
        }
        for n in 0..10_000 {
            t.failure(addr(1000 + n), &format!("name-{n}"), now);
            let tracked = t.tracked();
            assert!(
                tracked.addresses <= 64 && tracked.names <= 32,
                "{tracked:?}"
            );
        }
        // The guesser with many failures outranked the fresh entries: still blocked.
        assert!(t.blocked(addr(1), now).is_some());
    }
}
