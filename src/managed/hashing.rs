//! Properties declared with `secureHash` or `encryption` in `managed.json` (the password) are
//! stored as argon2 hashes: never in clear text, never returned.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

pub fn is_hash(value: &str) -> bool {
    value.starts_with("$argon2")
}

/// A fresh argon2id hash of `clear` with a random salt from the OS.
pub fn hash(clear: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default()
        .hash_password(clear.as_bytes())?
        .to_string())
}

/// Whether `clear` is the password behind `stored` (a malformed hash never matches).
pub fn verify(clear: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(clear.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// As [`verify`], filling `memory` (grown to the hash's memory cost and kept by the caller)
/// instead of allocating afresh: a thread that verifies many hashes holds one buffer, so its
/// memory does not depend on how the allocator keeps freed blocks.
pub fn verify_reusing(clear: &str, stored: &str, memory: &mut Vec<argon2::Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (
        argon2::Params::try_from(&parsed),
        argon2::Algorithm::try_from(parsed.algorithm.as_str()),
    ) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    // The PHC string's salt, decoded.
    let salt: &[u8] = &salt;
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), argon2::Block::default());
    }
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(clear.as_bytes(), salt, out, &mut memory[..])
        .is_ok()
        && subtle::ConstantTimeEq::ct_eq(&*out, expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash made by another implementation (the argon2 reference library, through Python's
    /// argon2-cffi), in the standard PHC form stored hashes have: it must keep verifying
    /// whatever version of the argon2 crate does the checking.
    const FOREIGN: &str = "$argon2id$v=19$m=19456,t=2,p=1$rC/Js5RNdbSKiS51UpGUQg$vQ4BM0QJ5QVSKMHVP63pa9lqLjGaiQqSUQcERfLFnJU";

    #[test]
    fn a_standard_phc_hash_from_elsewhere_verifies() {
        assert!(verify("Passw0rd!", FOREIGN));
        assert!(!verify("Passw0rd?", FOREIGN));
        let mut memory = Vec::new();
        assert!(verify_reusing("Passw0rd!", FOREIGN, &mut memory));
        assert!(!verify_reusing("passw0rd!", FOREIGN, &mut memory));
    }

    #[test]
    fn verify_reusing_agrees_with_verify() {
        let h = hash("Passw0rd!").unwrap();
        let mut memory = Vec::new();
        assert!(verify_reusing("Passw0rd!", &h, &mut memory));
        assert_eq!(
            memory.len(),
            19 * 1024,
            "the default memory cost, in 1 KiB blocks"
        );
        assert!(!verify_reusing("passw0rd!", &h, &mut memory));
        assert!(
            verify_reusing("Passw0rd!", &h, &mut memory),
            "the buffer is reused"
        );
        assert!(!verify_reusing("x", "not a hash", &mut memory));
        assert!(!verify_reusing(
            "x",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ",
            &mut memory
        ));
    }

    #[test]
    fn hash_and_verify() {
        let h = hash("Passw0rd!").unwrap();
        assert!(is_hash(&h));
        assert!(verify("Passw0rd!", &h));
        assert!(!verify("passw0rd!", &h));
        assert!(!verify("x", "not a hash"));
    }
}
