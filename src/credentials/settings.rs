//! The limits of credential guarding, from the environment (read once, when `serve` starts).

use std::time::Duration;

use super::throttle::ThrottleSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSettings {
    pub throttle: ThrottleSettings,
    /// Slow hashes (argon2, bcrypt) running at once (`IDM_AUTH_HASH_CONCURRENCY`, default:
    /// the number of cores).
    pub hash_concurrency: usize,
    /// Attempts waiting for a hash slot; beyond, 503 at once.
    pub hash_queue: usize,
    /// How long a credential that verified against a hash is remembered (by digest).
    pub remember_for: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        GuardSettings {
            throttle: ThrottleSettings::default(),
            hash_concurrency: cores,
            hash_queue: 32,
            remember_for: Duration::from_secs(5 * 60),
        }
    }
}

impl GuardSettings {
    pub fn from_env() -> GuardSettings {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Unparseable values fall back to the defaults, with a warning.
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> GuardSettings {
        let mut s = GuardSettings::default();
        for gone in [
            "IDM_ADMIN_LOGIN_MAX_FAILURES",
            "IDM_ADMIN_LOGIN_LOCKOUT_MINUTES",
        ] {
            if env(gone).is_some() {
                tracing::warn!(
                    "{gone} is no longer read: failed log-ins are throttled per address for REST and the Admin UI alike (IDM_AUTH_MAX_FAILURES, IDM_AUTH_MAX_BLOCK_MINUTES)"
                );
            }
        }
        if let Some(n) = positive(env, "IDM_AUTH_MAX_FAILURES") {
            s.throttle.free_failures = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(m) = positive(env, "IDM_AUTH_MAX_BLOCK_MINUTES") {
            s.throttle.max_block = Duration::from_secs(m.saturating_mul(60));
            // Counts must outlive the longest block, or a patient guesser's count resets.
            s.throttle.forget_after = s.throttle.forget_after.max(s.throttle.max_block * 2);
        }
        if let Some(n) = positive(env, "IDM_AUTH_HASH_CONCURRENCY") {
            s.hash_concurrency = usize::try_from(n).unwrap_or(usize::MAX);
        }
        s
    }
}

/// A positive whole number from `name`; anything else is ignored with a warning.
pub fn positive(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<u64> {
    let v = env(name)?;
    match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            tracing::warn!(value = %v, "{name} is not a positive number; ignored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_environment() {
        let s = GuardSettings::from_lookup(&|n| match n {
            "IDM_AUTH_MAX_FAILURES" => Some("3".into()),
            "IDM_AUTH_MAX_BLOCK_MINUTES" => Some("120".into()),
            "IDM_AUTH_HASH_CONCURRENCY" => Some("2".into()),
            _ => None,
        });
        assert_eq!(s.throttle.free_failures, 3);
        assert_eq!(s.throttle.max_block, Duration::from_secs(7200));
        assert_eq!(s.throttle.forget_after, Duration::from_secs(14_400));
        assert_eq!(s.hash_concurrency, 2);
        let d = GuardSettings::from_lookup(&|_| Some("bogus".into()));
        assert_eq!(d, GuardSettings::default());
        assert!(d.hash_concurrency >= 1);
    }
}
