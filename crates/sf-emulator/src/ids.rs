//! Salesforce record ids: 15-char case-sensitive ids and their 18-char case-safe form.
//!
//! An id is a 3-char key prefix (`005` User, `00e` Profile, `00D` Organization), 12 base-62 characters,
//! and, in the 18-char form, a 3-char suffix that encodes which of the first 15 characters are upper
//! case, so that the id survives case-insensitive systems. Per 5-char block, bit `i` is set when
//! character `i` of the block is an upper-case `A`–`Z`; the 5-bit value indexes
//! `ABCDEFGHIJKLMNOPQRSTUVWXYZ012345` (Salesforce KB 000385203; the published converters agree).

/// Salesforce's base-62 digits, in the order its sequences use.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The alphabet of the case-safe suffix.
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Key prefix of `User` records.
pub const USER_PREFIX: &str = "005";
/// Key prefix of `Profile` records.
pub const PROFILE_PREFIX: &str = "00e";
/// Key prefixes of the access objects (Salesforce's standard prefixes; README lists the sources).
pub const USER_LICENSE_PREFIX: &str = "100";
pub const USER_ROLE_PREFIX: &str = "00E";
pub const GROUP_PREFIX: &str = "00G";
pub const GROUP_MEMBER_PREFIX: &str = "011";
pub const PERMISSION_SET_PREFIX: &str = "0PS";
pub const PERMISSION_SET_ASSIGNMENT_PREFIX: &str = "0Pa";
pub const PERMISSION_SET_GROUP_PREFIX: &str = "0PG";
/// Key prefix of the `Organization` record.
pub const ORG_PREFIX: &str = "00D";
/// Key prefix Salesforce uses for query locators.
pub const QUERY_LOCATOR_PREFIX: &str = "01g";

/// The 3-char case-safe suffix of a 15-char id. `None` unless `id15` is 15 ASCII alphanumerics.
pub fn checksum(id15: &str) -> Option<String> {
    let bytes = id15.as_bytes();
    if bytes.len() != 15 || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut out = String::with_capacity(3);
    for block in bytes.chunks(5) {
        let mut bits = 0usize;
        for (i, c) in block.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        // Five bits at most: under 32, the suffix alphabet's length.
        out.push(char::from(*SUFFIX.get(bits)?));
    }
    Some(out)
}

/// The 18-char form of a 15-char id.
pub fn to_18(id15: &str) -> Option<String> {
    checksum(id15).map(|suffix| format!("{id15}{suffix}"))
}

/// The canonical 15-char (case-sensitive) form of a 15- or 18-char id, the key every lookup uses.
///
/// An 18-char id is accepted in any letter case, as Salesforce accepts it: the suffix says which
/// characters are upper case, so the case of the first 15 is restored from it. `None` if `id` is not
/// shaped like an id or its suffix is not a valid suffix character.
pub fn canonical_15(id: &str) -> Option<String> {
    let bytes = id.as_bytes();
    if !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    match bytes.split_at_checked(15)? {
        (_, []) => Some(id.to_owned()),
        (id15, suffix @ [_, _, _]) => {
            let mut out = Vec::with_capacity(15);
            for (block, s) in id15.chunks(5).zip(suffix) {
                let bits = SUFFIX.iter().position(|x| x.eq_ignore_ascii_case(s))?;
                for (i, c) in block.iter().enumerate() {
                    if bits & (1 << i) != 0 {
                        out.push(c.to_ascii_uppercase());
                    } else {
                        out.push(c.to_ascii_lowercase());
                    }
                }
            }
            String::from_utf8(out).ok()
        }
        _ => None,
    }
}

/// Builds the 18-char id number `seq` for a key prefix: prefix, a fixed 3-char "instance" part, and
/// `seq` as 9 base-62 digits, then the checksum.
pub fn make_id(prefix: &str, seq: u64) -> String {
    let mut digits = [b'0'; 9];
    let mut n = seq;
    for d in digits.iter_mut().rev() {
        *d = base62_digit(n);
        n /= 62;
    }
    let id15 = format!("{prefix}5g0{}", String::from_utf8_lossy(&digits));
    to_18(&id15).unwrap_or(id15)
}

/// Whether `id` is a well-formed 15/18-char id with the given key prefix.
pub fn has_prefix(id: &str, prefix: &str) -> bool {
    canonical_15(id).is_some_and(|c| c.starts_with(prefix))
}

/// The base-62 digit of `n % 62`.
#[allow(clippy::indexing_slicing)] // `n % 62` is below 62, BASE62's length
fn base62_digit(n: u64) -> u8 {
    BASE62[(n % 62) as usize]
}

/// Random base-62 text (tokens, codes, locators); `next` supplies random 64-bit words.
pub fn random_base62(len: usize, mut next: impl FnMut() -> u64) -> String {
    (0..len).map(|_| char::from(base62_digit(next()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids_from_published_converters() {
        // Pairs published with the 15→18 converters (salesforce_id_converter's README example,
        // salesforce_id_formatter's docs, marz619's doctests). jbaylor-rpx's `a0D30000001n7PiEAC` is
        // left out: salesforce_id_formatter notes that converter computes the suffix wrongly.
        assert_eq!(
            to_18("00558000001N0Ke").as_deref(),
            Some("00558000001N0KeAAK")
        );
        assert_eq!(
            to_18("70130000001tcyI").as_deref(),
            Some("70130000001tcyIAAQ")
        );
        assert_eq!(
            to_18("a0BA0000000L2ZC").as_deref(),
            Some("a0BA0000000L2ZCMA0")
        );
        assert_eq!(
            to_18("ABCDEFGHIJKLMNO").as_deref(),
            Some("ABCDEFGHIJKLMNO555")
        );
        assert_eq!(
            to_18("AAaAAbbBBBCcCCC").as_deref(),
            Some("AAaAAbbBBBCcCCC123")
        );
    }

    #[test]
    fn checksum_rejects_bad_shapes() {
        assert_eq!(checksum("short"), None);
        assert_eq!(checksum("00558000001N0K-"), None);
    }

    #[test]
    fn canonical_restores_case_from_the_suffix() {
        assert_eq!(
            canonical_15("00558000001N0KeAAK").as_deref(),
            Some("00558000001N0Ke")
        );
        assert_eq!(
            canonical_15("00558000001n0keaak").as_deref(),
            Some("00558000001N0Ke")
        );
        assert_eq!(
            canonical_15("A0BA0000000L2ZCMA0").as_deref(),
            Some("a0BA0000000L2ZC")
        );
        assert_eq!(
            canonical_15("00558000001N0Ke").as_deref(),
            Some("00558000001N0Ke")
        );
        assert_eq!(canonical_15("not-an-id"), None);
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = make_id(USER_PREFIX, 1);
        let b = make_id(USER_PREFIX, 62);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("005"));
        assert_ne!(a, b);
        for id in [&a, &b] {
            let c = canonical_15(id).unwrap();
            assert_eq!(to_18(&c).as_deref(), Some(id.as_str()));
        }
        assert!(has_prefix(&a, USER_PREFIX));
        assert!(!has_prefix(&a, PROFILE_PREFIX));
    }
}
