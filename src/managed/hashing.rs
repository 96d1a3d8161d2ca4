//! Properties declared with `secureHash` or `encryption` in `managed.json` (the password) are
//! stored as argon2 hashes: never in clear text, never returned.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

pub fn is_hash(value: &str) -> bool {
    value.starts_with("$argon2")
}

pub fn hash(clear: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(clear.as_bytes(), &salt)?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("Passw0rd!").unwrap();
        assert!(is_hash(&h));
        assert!(verify("Passw0rd!", &h));
        assert!(!verify("passw0rd!", &h));
        assert!(!verify("x", "not a hash"));
    }
}
