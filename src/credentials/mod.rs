//! Credential guarding, one service for the REST API and the Admin UI: the admin account's
//! password check, behind a throttle per client address and user name, with slow hashes under
//! a concurrency cap and recent successes remembered by digest; the default password only from
//! loopback. The transports only read the credentials and turn a [`Refusal`] into their answer.
//!
//! | file | responsibility |
//! |---|---|
//! | `mod.rs` | [`Authenticator`]: one attempt's verdict |
//! | `settings.rs` | the limits, from the environment |
//! | `client_key.rs` | the address a failure counts against (IPv6 by /64) |
//! | `throttle.rs` | failures per address and per name, and the blocks they earn |
//! | `hash_gate.rs` | the cap on argon2/bcrypt verifications running at once |
//! | `remembered.rs` | credentials that verified lately, by HMAC digest |
//! | `log_limit.rs` | a flood of failures makes a few log lines |

mod client_key;
mod hash_gate;
mod log_limit;
mod remembered;
pub mod settings;
pub mod throttle;

use std::sync::Arc;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

pub use client_key::{ClientKey, client_of};
pub use hash_gate::HashStats;
pub use settings::GuardSettings;
pub use throttle::Tracked;

use self::hash_gate::{Busy, HashGate};
use self::log_limit::LogLimiter;
use self::remembered::Remembered;
use self::throttle::Throttle;
use crate::api::client_addr::ClientAddr;
use crate::config::authentication::{AuthConfig, StoredPassword};
use crate::secrets::Sealer;

/// Both transports say this when the default password comes from another address.
pub const DEFAULT_PASSWORD_REFUSED: &str = "The default admin password is accepted only from this machine (loopback clients). Set IDM_ADMIN_PASSWORD (or the password in conf/authentication.json) to use the admin account from other addresses.";

/// Why the guard cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("the system's random source failed")]
    Random,
    #[error("cannot start the password-hash threads")]
    Threads(#[source] std::io::Error),
}

/// Why an attempt did not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("wrong user name or password")]
    Wrong,
    /// The address is blocked, or this failure blocked it; the password was not checked
    /// while blocked.
    #[error("too many failed attempts from this address")]
    Throttled { retry_after: Duration },
    /// Every hash slot is taken and the queue is full: nothing was checked.
    #[error("too many password checks in progress")]
    Busy { retry_after: Duration },
    /// The right default password, from an address that is not loopback.
    #[error("the default admin password is accepted only from loopback clients")]
    DefaultPasswordRemote,
}

impl Refusal {
    /// Whole seconds for `Retry-After` (at least 1), when the client should come back later.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Refusal::Throttled { retry_after } | Refusal::Busy { retry_after } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            Refusal::Wrong | Refusal::DefaultPasswordRemote => None,
        }
    }
}

pub struct Authenticator {
    account: AuthConfig,
    throttle: Throttle,
    gate: HashGate,
    remembered: Remembered,
    log: LogLimiter,
    fingerprint: String,
}

impl Authenticator {
    /// `sealer` keys the admin credential's fingerprint, which sessions carry (the same in
    /// every replica sharing the secrets key).
    pub fn new(
        account: AuthConfig,
        settings: GuardSettings,
        sealer: &Sealer,
    ) -> Result<Arc<Authenticator>, GuardError> {
        let stored = match &account.password {
            StoredPassword::Clear(s) | StoredPassword::Argon2(s) | StoredPassword::Bcrypt(s) => s,
        };
        let fingerprint = sealer.fingerprint(
            "admin credential",
            &[account.username.as_bytes(), stored.as_bytes()],
        );
        Ok(Arc::new(Authenticator {
            throttle: Throttle::new(settings.throttle),
            gate: HashGate::new(settings.hash_concurrency, settings.hash_queue)
                .map_err(GuardError::Threads)?,
            remembered: Remembered::new(settings.remember_for, 16)?,
            log: LogLimiter::new(10, Duration::from_secs(10)),
            fingerprint,
            account,
        }))
    }

    /// One attempt from `client` (`None`: unknown, treated as not loopback).
    pub async fn authenticate(
        &self,
        client: Option<ClientAddr>,
        username: &str,
        password: &str,
    ) -> Result<(), Refusal> {
        let key = ClientKey::of(client.as_ref());
        if let Some(retry_after) = self.throttle.blocked(key, Instant::now()) {
            return Err(Refusal::Throttled { retry_after });
        }
        let user_ok: bool = username
            .as_bytes()
            .ct_eq(self.account.username.as_bytes())
            .into();
        let password_ok = match &self.account.password {
            StoredPassword::Clear(expected) => {
                password.as_bytes().ct_eq(expected.as_bytes()).into()
            }
            stored => {
                self.verify_hashed(key, stored, username, password, user_ok)
                    .await?
            }
        };
        if user_ok && password_ok {
            if self.account.uses_default_password() && !client.is_some_and(|c| c.is_loopback()) {
                if let Some(suppressed) = self.log.permit(Instant::now()) {
                    tracing::warn!(
                        client = %key,
                        suppressed,
                        "default admin password refused from a non-loopback address: set IDM_ADMIN_PASSWORD"
                    );
                }
                return Err(Refusal::DefaultPasswordRemote);
            }
            self.throttle.success(key);
            return Ok(());
        }
        let blocked = self.throttle.failure(key, username, Instant::now());
        if let Some(suppressed) = self.log.permit(Instant::now()) {
            // Never the password, nor the name (people type passwords into it).
            tracing::warn!(
                client = %key,
                admin_name = user_ok,
                blocked_secs = blocked.map(|b| b.as_secs()),
                suppressed,
                "credentials refused"
            );
        }
        Err(match blocked {
            Some(retry_after) => Refusal::Throttled { retry_after },
            None => Refusal::Wrong,
        })
    }

    async fn verify_hashed(
        &self,
        key: ClientKey,
        stored: &StoredPassword,
        username: &str,
        password: &str,
        user_ok: bool,
    ) -> Result<bool, Refusal> {
        let digest = self.remembered.digest(username, password);
        // Only successes with the right name are remembered: a hit is the right credential.
        if self.remembered.hit(&digest, Instant::now()) {
            return Ok(true);
        }
        let _slot = self
            .throttle
            .begin_slow_check(key, Instant::now())
            .map_err(|retry_after| Refusal::Throttled { retry_after })?;
        let ok = self
            .gate
            .verify(stored, password)
            .await
            .map_err(|Busy| Refusal::Busy {
                retry_after: Duration::from_secs(1),
            })?;
        if ok && user_ok {
            self.remembered.insert(digest, Instant::now());
        }
        Ok(ok)
    }

    /// A keyed digest of the configured admin account (name and stored password): sessions
    /// created under another one are dead.
    pub fn credential_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn hash_stats(&self) -> HashStats {
        self.gate.stats()
    }

    /// Entries the throttle and the remembered digests hold (bounded).
    pub fn tracked(&self) -> (Tracked, usize) {
        (self.throttle.tracked(), self.remembered.count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(password: &str) -> Arc<Authenticator> {
        Authenticator::new(
            AuthConfig {
                username: "admin".into(),
                password: StoredPassword::parse(password),
            },
            GuardSettings::default(),
            &Sealer::new(&[1; crate::secrets::KEY_LEN]).unwrap(),
        )
        .unwrap()
    }

    fn at(s: &str) -> Option<ClientAddr> {
        Some(ClientAddr(s.parse().unwrap()))
    }

    const LOCAL: &str = "127.0.0.1:40000";

    #[tokio::test]
    async fn clear_and_hashed_passwords() {
        let ok = |r: Result<(), Refusal>| r.is_ok();
        let a = auth("secret");
        assert!(ok(a.authenticate(at(LOCAL), "admin", "secret").await));
        assert!(!ok(a.authenticate(at(LOCAL), "admin", "secreT").await));
        assert!(!ok(a.authenticate(at(LOCAL), "root", "secret").await));

        let a = auth(&crate::managed::hashing::hash("s3cret").unwrap());
        assert_eq!(
            a.authenticate(at(LOCAL), "admin", "wrong").await,
            Err(Refusal::Wrong)
        );
        assert!(ok(a.authenticate(at(LOCAL), "admin", "s3cret").await));
        assert_eq!(a.tracked().1, 1, "remembered");
        assert!(ok(a.authenticate(at(LOCAL), "admin", "s3cret").await));
        assert!(!ok(a.authenticate(at(LOCAL), "Admin", "s3cret").await));
        assert_eq!(a.tracked().1, 1, "a wrong name is not remembered");

        let bc = auth(&bcrypt::hash("bpass", 4).unwrap());
        assert!(ok(bc.authenticate(at(LOCAL), "admin", "bpass").await));
        assert!(!ok(bc.authenticate(at(LOCAL), "admin", "nope").await));
    }

    #[tokio::test]
    async fn the_default_password_only_from_loopback() {
        let a = auth(crate::config::authentication::DEFAULT_PASSWORD);
        let pw = crate::config::authentication::DEFAULT_PASSWORD;
        for local in [
            "127.0.0.1:1",
            "127.0.0.2:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert_eq!(
                a.authenticate(at(local), "admin", pw).await,
                Ok(()),
                "{local}"
            );
        }
        for remote in [Some("10.0.0.1:1"), Some("[2001:db8::1]:1"), None] {
            let client = remote.and_then(at);
            assert_eq!(
                a.authenticate(client, "admin", pw).await,
                Err(Refusal::DefaultPasswordRemote),
                "{remote:?}"
            );
        }
        // Any other password works from anywhere.
        assert_eq!(
            auth("Str0ng")
                .authenticate(at("10.0.0.1:1"), "admin", "Str0ng")
                .await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_blocked_address_is_refused_without_a_check_and_others_get_in() {
        let a = auth("right");
        let attacker = at("10.0.0.66:1");
        let mut refusals = Vec::new();
        for _ in 0..8 {
            refusals.push(a.authenticate(attacker, "admin", "guess").await);
        }
        assert_eq!(refusals[..5], vec![Err(Refusal::Wrong); 5]);
        assert!(matches!(refusals[5], Err(Refusal::Throttled { .. })));
        // Even the right password, while blocked: a guess made now would learn nothing.
        assert!(matches!(
            a.authenticate(attacker, "admin", "right").await,
            Err(Refusal::Throttled { .. })
        ));
        assert_eq!(
            a.authenticate(at("10.0.0.7:1"), "admin", "right").await,
            Ok(())
        );
        assert_eq!(
            Refusal::Throttled {
                retry_after: Duration::from_millis(1500)
            }
            .retry_after_secs(),
            Some(2)
        );
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_flood_makes_a_few_log_lines_without_passwords_or_names() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let a = auth("right");
        for n in 0..200 {
            let client = at(&format!("10.9.{}.{}:1", n / 250, n % 250 + 1));
            let _ = a
                .authenticate(client, "name-Typed-Secret", "Hunter2-password")
                .await;
        }
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines = log.lines().count();
        assert!((1..=10).contains(&lines), "{lines} lines:\n{log}");
        assert!(log.contains("credentials refused"), "{log}");
        assert!(!log.contains("Hunter2"), "{log}");
        assert!(!log.contains("Typed-Secret"), "{log}");
    }

    #[test]
    fn the_fingerprint_follows_the_account_and_the_key() {
        let key = Sealer::new(&[1; crate::secrets::KEY_LEN]).unwrap();
        let make = |user: &str, pw: &str, sealer: &Sealer| {
            Authenticator::new(
                AuthConfig {
                    username: user.into(),
                    password: StoredPassword::parse(pw),
                },
                GuardSettings::default(),
                sealer,
            )
            .unwrap()
            .credential_fingerprint()
            .to_owned()
        };
        let f = make("admin", "one", &key);
        assert_eq!(f, make("admin", "one", &key));
        assert_ne!(f, make("admin", "two", &key));
        assert_ne!(f, make("root", "one", &key));
        assert!(!f.contains("one"));
        let other = Sealer::new(&[2; crate::secrets::KEY_LEN]).unwrap();
        assert_ne!(f, make("admin", "one", &other));
    }
}
