//! Credentials that verified against a slow hash, remembered for a few minutes so a correct
//! client does not pay a full hash per request. Only an HMAC-SHA256 of user name and password
//! is kept, under a key drawn at start and never stored: the password itself is gone when its
//! request ends. Bounded: only successes enter, and at most `cap` of them.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ring::hmac;
use ring::rand::SystemRandom;

use super::GuardError;

pub type Digest = [u8; 32];

pub struct Remembered {
    key: hmac::Key,
    ttl: Duration,
    cap: usize,
    entries: Mutex<HashMap<Digest, Instant>>,
}

impl Remembered {
    pub fn new(ttl: Duration, cap: usize) -> Result<Remembered, GuardError> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| GuardError::Random)?;
        Ok(Remembered {
            key,
            ttl,
            cap: cap.max(1),
            entries: Mutex::default(),
        })
    }

    pub fn digest(&self, username: &str, password: &str) -> Digest {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(username.len() as u64).to_be_bytes());
        ctx.update(username.as_bytes());
        ctx.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Whether `digest` verified within the last `ttl`; a hit keeps it for another `ttl`.
    pub fn hit(&self, digest: &Digest, now: Instant) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get_mut(digest) {
            Some(until) if *until > now => {
                *until = now + self.ttl;
                true
            }
            Some(_) => {
                entries.remove(digest);
                false
            }
            None => false,
        }
    }

    pub fn insert(&self, digest: Digest, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.cap && !entries.contains_key(&digest) {
            entries.retain(|_, until| *until > now);
            if entries.len() >= self.cap {
                if let Some(oldest) = entries.iter().min_by_key(|(_, u)| **u).map(|(d, _)| *d) {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(digest, now + self.ttl);
    }

    pub fn count(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_briefly_and_boundedly_by_digest() {
        let r = Remembered::new(Duration::from_secs(300), 2).unwrap();
        let now = Instant::now();
        let d = r.digest("admin", "pw");
        assert_ne!(
            d,
            r.digest("admi", "npw"),
            "the user name is length-prefixed"
        );
        assert_ne!(
            d,
            Remembered::new(Duration::from_secs(1), 1)
                .unwrap()
                .digest("admin", "pw"),
            "a key per process"
        );
        assert!(!r.hit(&d, now));
        r.insert(d, now);
        assert!(r.hit(&d, now + Duration::from_secs(299)));
        assert!(
            r.hit(&d, now + Duration::from_secs(500)),
            "a hit extends it"
        );
        assert!(!r.hit(&d, now + Duration::from_secs(900)));
        for i in 0..10 {
            r.insert(r.digest("admin", &i.to_string()), now);
            assert!(r.count() <= 2);
        }
    }
}
