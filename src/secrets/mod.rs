//! Secrets at rest. The Salesforce refresh token and consumer secret are stored in Postgres
//! sealed (ChaCha20-Poly1305) under a key only the roles hold, so a database dump, a backup or
//! a read-only SQL account does not hand out access to the org.
//!
//! A sealed value is `sealed:v1:` and the base64 of a fresh 96-bit nonce followed by the
//! ciphertext and its tag; the column it belongs to is bound in as associated data, so a
//! value cannot be moved to another column. A value without the prefix is one written before
//! sealing existed: it is read as it is and sealed at its next write.
//!
//! | file | responsibility |
//! |---|---|
//! | `mod.rs` | [`Sealer`]: seal and open |
//! | `key.rs` | where the key comes from: `IDM_SECRETS_KEY`, or a key file generated once |

mod key;

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

pub use key::{DEFAULT_KEY_FILE, KEY_LEN, KeySource, ensure_file, load};
// Connection URLs with their passwords masked, for logs and `Debug` (crates/idm-core).
pub use idm_core::redact::{RedactedUrl, redact_url};

const PREFIX: &str = "sealed:v1:";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("IDM_SECRETS_KEY is not the base64 of {KEY_LEN} bytes")]
    BadKey,
    #[error("the secrets key file {path} does not hold the base64 of {KEY_LEN} bytes")]
    BadKeyFile { path: String },
    #[error("cannot read or create the secrets key file {path}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the stored {what} was sealed under another secrets key: give every role sharing this database the same key (IDM_SECRETS_KEY or --secrets-key-file)"
    )]
    WrongKey { what: &'static str },
    #[error("the stored {what} is damaged: it is not a sealed value this version can read")]
    Damaged { what: &'static str },
    #[error("the system's random source failed")]
    Random,
}

/// Seals and opens secrets under one key. Cheap to clone; its `Debug` shows no key.
#[derive(Clone)]
pub struct Sealer {
    key: Arc<LessSafeKey>,
    /// HMAC-SHA256 under the same key, only to derive per-purpose keys from ([`Sealer::mac_key`]):
    /// no value is ever both sealed and MACed under one key.
    master: hmac::Key,
    rng: SystemRandom,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(key: &[u8; KEY_LEN]) -> Result<Sealer, SecretsError> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| SecretsError::BadKey)?;
        Ok(Sealer {
            key: Arc::new(LessSafeKey::new(unbound)),
            master: hmac::Key::new(hmac::HMAC_SHA256, key),
            rng: SystemRandom::new(),
        })
    }

    /// An HMAC-SHA256 key for one purpose (e.g. `paging-cookie`), the same in every role that
    /// holds this secrets key, so what one replica signs another accepts. Derived as
    /// HMAC(secrets key, "idm-sync:" + purpose): no use of one key can forge for another.
    pub fn mac_key(&self, purpose: &str) -> hmac::Key {
        let derived = hmac::sign(&self.master, format!("idm-sync:{purpose}").as_bytes());
        hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
    }

    /// A keyed digest (HMAC-SHA256, hex) of `parts` for `purpose`: the same in every role
    /// holding this key, and worthless for guessing the input to anyone who can only read the
    /// database. Each part is length-prefixed, so `("ab","c")` and `("a","bc")` differ.
    pub fn fingerprint(&self, purpose: &str, parts: &[&[u8]]) -> String {
        let mut ctx = hmac::Context::with_key(&self.mac_key("fingerprint"));
        for part in std::iter::once(purpose.as_bytes()).chain(parts.iter().copied()) {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        ctx.sign()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `plain` sealed for the column `what` (e.g. `salesforce_tokens.refresh_token`).
    pub fn seal(&self, what: &'static str, plain: &str) -> Result<String, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| SecretsError::Random)?;
        let mut sealed = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(what.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SecretsError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// The secret in `stored`, a value of the column `what`: opened if sealed, as it is if it
    /// was written before sealing existed.
    pub fn open(&self, what: &'static str, stored: &str) -> Result<String, SecretsError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let damaged = || SecretsError::Damaged { what };
        let mut bytes = STANDARD.decode(encoded).map_err(|_| damaged())?;
        if bytes.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(damaged());
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| damaged())?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(what.as_bytes()), &mut sealed)
            .map_err(|_| SecretsError::WrongKey { what })?;
        String::from_utf8(plain.to_vec()).map_err(|_| damaged())
    }

    /// Whether a stored value is sealed (not one written before sealing existed).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHAT: &str = "salesforce_tokens.refresh_token";

    #[test]
    fn a_sealed_secret_opens_under_its_key_and_column_only() {
        let sealer = Sealer::new(&[7; KEY_LEN]).unwrap();
        let sealed = sealer.seal(WHAT, "5Aep861-refresh").unwrap();
        assert!(Sealer::is_sealed(&sealed));
        // '-' is not in base64's alphabet: the secret's text cannot appear by chance.
        assert!(!sealed.contains("5Aep861-refresh"));
        assert_eq!(sealer.open(WHAT, &sealed).unwrap(), "5Aep861-refresh");
        // A fresh nonce each time: the same secret never seals to the same text.
        assert_ne!(sealer.seal(WHAT, "5Aep861-refresh").unwrap(), sealed);

        let other = Sealer::new(&[8; KEY_LEN]).unwrap();
        assert!(matches!(
            other.open(WHAT, &sealed),
            Err(SecretsError::WrongKey { .. })
        ));
        assert!(matches!(
            sealer.open("salesforce_connector_settings.client_secret", &sealed),
            Err(SecretsError::WrongKey { .. })
        ));
    }

    #[test]
    fn mac_keys_differ_by_purpose_and_key_and_agree_across_sealers() {
        let tag = |sealer: &Sealer, purpose: &str| {
            hmac::sign(&sealer.mac_key(purpose), b"data")
                .as_ref()
                .to_vec()
        };
        let (a, b) = (
            Sealer::new(&[7; KEY_LEN]).unwrap(),
            Sealer::new(&[7; KEY_LEN]).unwrap(),
        );
        assert_eq!(tag(&a, "paging-cookie"), tag(&b, "paging-cookie"));
        assert_ne!(tag(&a, "paging-cookie"), tag(&a, "admin-session"));
        let other = Sealer::new(&[8; KEY_LEN]).unwrap();
        assert_ne!(tag(&a, "paging-cookie"), tag(&other, "paging-cookie"));
    }

    #[test]
    fn legacy_plain_values_pass_and_damaged_ones_are_refused() {
        let sealer = Sealer::new(&[7; KEY_LEN]).unwrap();
        assert_eq!(sealer.open(WHAT, "plain-token").unwrap(), "plain-token");
        assert!(!Sealer::is_sealed("plain-token"));
        for bad in ["sealed:v1:not base64!", "sealed:v1:", "sealed:v1:AAAA"] {
            assert!(
                matches!(sealer.open(WHAT, bad), Err(SecretsError::Damaged { .. })),
                "{bad}"
            );
        }
        let mut tampered = sealer.seal(WHAT, "secret").unwrap();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(sealer.open(WHAT, &tampered).is_err());
    }

    #[test]
    fn fingerprints_depend_on_key_purpose_and_every_part() {
        let a = Sealer::new(&[7; KEY_LEN]).unwrap();
        let b = Sealer::new(&[8; KEY_LEN]).unwrap();
        let f = a.fingerprint("admin", &[b"u", b"p"]);
        assert_eq!(f.len(), 64);
        assert_eq!(f, a.clone().fingerprint("admin", &[b"u", b"p"]));
        assert_ne!(f, b.fingerprint("admin", &[b"u", b"p"]));
        assert_ne!(f, a.fingerprint("other", &[b"u", b"p"]));
        assert_ne!(f, a.fingerprint("admin", &[b"up", b""]));
        assert_ne!(f, a.fingerprint("admin", &[b"u", b"q"]));
    }

    #[test]
    fn debug_shows_no_key() {
        assert_eq!(
            format!("{:?}", Sealer::new(&[7; KEY_LEN]).unwrap()),
            "Sealer(..)"
        );
    }
}
